/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm-relay: the control relay of a socket-backend vTPM
 * (lib/ctrl_relay.h), exec'd by ov_ctrl_relay_spawn with its fds in place
 * and its privileges dropped. A program of its own so that a relay holds
 * only what it needs while its vTPM lives (libc only: no libseccomp, no
 * libcrypto). Not for running by hand.
 */
#include "oci-vtpm/ctrl_relay.h"

int main(void)
{
	ov_ctrl_relay_run();
}
