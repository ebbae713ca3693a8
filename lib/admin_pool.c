/* SPDX-License-Identifier: Apache-2.0 */
/* oci-vtpm pool (admin.h): the provisioning pool and the warm vTPMs. */
#include <stdio.h>

#include "oci-vtpm/admin.h"
#include "oci-vtpm/pool.h"
#include "oci-vtpm/util.h"
#include "oci-vtpm/warm.h"

/* Seconds of CLOCK_MONOTONIC. */
static double now_s(void)
{
	return ov_util_mono_ms() / 1e3;
}

int ov_admin_pool_status(const struct ov_settings *s, struct ov_admin_pool_status *r, ov_error *err)
{
	*r = (struct ov_admin_pool_status){0};
	if (ov_pool_status(s, &r->pool, err) < 0)
		return -1;
	snprintf(r->dir, sizeof(r->dir), "%s/pool", s->state_dir);
	r->pool_size = s->pool_size;
	r->warm = ov_warm_count(s, OV_TPM_2_0);
	r->warm_size = s->warm_size;
	r->warm12 = ov_warm_count(s, OV_TPM_1_2);
	r->warm_size_tpm12 = s->warm_size_tpm12;
	return 0;
}

static void fill_step(struct ov_admin_pool_fill *r, enum ov_admin_fill_kind kind, unsigned n,
		      double seconds)
{
	if (n && r->n_steps < OV_ADMIN_FILL_STEPS)
		r->steps[r->n_steps++] = (struct ov_admin_fill_step){kind, n, seconds};
}

static int pool_fill(const struct ov_settings *s, unsigned target, struct ov_admin_pool_fill *r,
		     ov_error *err)
{
	unsigned made = 0, removed = 0;
	double t0 = now_s();
	int ret = ov_pool_fill(s, target, &made, &removed, err);

	fill_step(r, OV_ADMIN_FILL_REMOVED, removed, 0);
	fill_step(r, OV_ADMIN_FILL_MADE, made, now_s() - t0);
	return ret;
}

static int warm_fill(const struct ov_settings *s, enum ov_tpm_version v, unsigned *made,
		     struct ov_admin_pool_fill *r, ov_error *err)
{
	double t0 = now_s();
	unsigned ready;
	int ret = ov_warm_fill(s, v, &ready, made, err);

	fill_step(r, v == OV_TPM_2_0 ? OV_ADMIN_FILL_WARM : OV_ADMIN_FILL_WARM12, *made,
		  now_s() - t0);
	return ret;
}

int ov_admin_pool_fill(const struct ov_settings *s, long count, struct ov_admin_pool_fill *r,
		       ov_error *err)
{
	unsigned target = count < 0 ? s->pool_size : (unsigned)count, made = 0;
	/* Plain warm vTPMs need no keys: first (TPM 1.2 ones are never
	 * certified). EK-certified ones take their state from the pool: it
	 * is filled before them and after. */
	bool warm_first = s->warm_size && !s->ek_cert;

	*r = (struct ov_admin_pool_fill){0};
	if (s->warm_size_tpm12 && warm_fill(s, OV_TPM_1_2, &made, r, err) < 0)
		return -1;
	if (warm_first && warm_fill(s, OV_TPM_2_0, &made, r, err) < 0)
		return -1;
	if ((target > 0 || !s->warm_size) && pool_fill(s, target, r, err) < 0)
		return -1;
	if (s->warm_size && !warm_first) {
		if (warm_fill(s, OV_TPM_2_0, &made, r, err) < 0)
			return -1;
		if (made && target > 0 && pool_fill(s, target, r, err) < 0)
			return -1;
	}
	return 0;
}

int ov_admin_pool_drain(const struct ov_settings *s, unsigned *removed, unsigned *warm,
			ov_error *err)
{
	*warm = ov_warm_drain(s);
	*removed = 0;
	return ov_pool_drain(s, removed, err);
}
