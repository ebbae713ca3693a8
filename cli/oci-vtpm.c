/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci-vtpm: the admin tool. The verbs are the entries of commands[]; each
 * lives in the file of its group (keys.c, archive.c, gc.c, log.c, pool.c, cdi.c) and
 * prints what lib/admin.c returns.
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "oci-vtpm/config.h"
#include "oci-vtpm/log.h"

#define MAX_FORMS 3

struct form {
	const char *synopsis; /* after the verb's name: its arguments */
	const char *help;     /* one line */
};

struct command {
	const char *name;
	cli_handler *run;
	struct form forms[MAX_FORMS]; /* the ways to call it */
};

static const struct command commands[] = {
    {"init", cli_init, {{"", "create the master key and the host CA (never overwrites)"}}},
    {"list",
     cli_list,
     {{"[--json]", "archived vTPMs: generations, size, last archived, in use by"}}},
    {"inspect", cli_inspect, {{"NAME", "one vTPM, every generation verified"}}},
    {"export",
     cli_export,
     {{"NAME FILE", "the newest generation, still encrypted and authenticated"}}},
    {"import", cli_import, {{"FILE", "a vTPM exported on a host with the same master key"}}},
    {"rm", cli_rm, {{"NAME", "destroy a vTPM (refused while in use)"}}},
    {"restore", cli_restore, {{"NAME --generation N", "make generation N the newest again"}}},
    {"rotate-key", cli_rotate_key, {{"", "new master key; every vTPM rewrapped, crash-safe"}}},
    {"gc", cli_gc, {{"", "collect what a crash or a reboot left"}}},
    {"log",
     cli_log,
     {{"ID [N]", "the launch measurements (CEL-JSON event log) of container ID's vTPM N"}}},
    {"top",
     cli_top,
     {{"[--json]", "running vTPMs: their swtpms' memory, pids and CPU, and the limits"}}},
    {"pool",
     cli_pool,
     {{"fill [N]", "EK-certified states up to N ready (default pool_size), warm vTPMs up to "
		   "warm_size (TPM 2.0) and warm_size_tpm12 (TPM 1.2)"},
      {"status [--json]", "ready entries, stale ones, claims under way, warm vTPMs"},
      {"drain", "remove every pooled state, stop every warm vTPM"}}},
    {"cdi",
     cli_cdi,
     {{"[--dir DIR] [NAME...]", "write the CDI spec (oci-vtpm.io/tpm: ephemeral, each NAME) to "
				"DIR/oci-vtpm.json (default /etc/cdi)"}}},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

bool cli_is_json(const char *arg)
{
	return strcmp(arg, "--json") == 0;
}

void cli_print_json(json_object *o, bool pretty)
{
	printf("%s\n", json_object_to_json_string_ext(o, pretty ? JSON_C_TO_STRING_PRETTY
								: JSON_C_TO_STRING_PLAIN));
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static void print_forms(FILE *f, const struct command *c)
{
	for (size_t i = 0; i < MAX_FORMS && c->forms[i].help; i++) {
		char verb[64];

		snprintf(verb, sizeof(verb), "%s%s%s", c->name, *c->forms[i].synopsis ? " " : "",
			 c->forms[i].synopsis);
		fprintf(f, "  %-28s %s\n", verb, c->forms[i].help);
	}
}

static int usage(FILE *f, int status)
{
	fprintf(f,
		"usage: %s [--config FILE] VERB [ARGS]\n"
		"       %s VERB --help\n"
		"       %s --help | --version\n\nVerbs:\n",
		CLI_PROG, CLI_PROG, CLI_PROG);
	for (size_t i = 0; i < N_COMMANDS; i++)
		print_forms(f, &commands[i]);
	fprintf(f, "\n--config FILE: the settings (default $OCI_VTPM_CONFIG, else "
		   "/etc/oci-vtpm/config.json).\nSee oci-vtpm(8) and oci-vtpm.json(5).\n");
	return status;
}

static int verb_usage(FILE *f, const struct command *c, int status)
{
	const char *synopsis = c->forms[1].help ? "SUBCOMMAND" : c->forms[0].synopsis;

	fprintf(f, "usage: %s [--config FILE] %s%s%s\n", CLI_PROG, c->name, *synopsis ? " " : "",
		synopsis);
	print_forms(f, c);
	return status;
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct ov_settings s = {0};
	ov_error err = {0};
	const struct command *c;
	const char *config = NULL;
	int ret, i = 1;

	ov_log_init(CLI_PROG);
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%s %s\n", CLI_PROG, OV_VERSION);
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "--config") == 0) {
		config = argv[2];
		i = 3;
	}
	if (i >= argc)
		return usage(stderr, 2);
	if (is_help(argv[i]) || strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc && (c = find(argv[i + 1])))
			return verb_usage(stdout, c, 0);
		return usage(stdout, 0);
	}
	c = find(argv[i]);
	if (!c)
		return usage(stderr, 2);
	argc -= i;
	argv += i;
	if (argc == 2 && is_help(argv[1]))
		return verb_usage(stdout, c, 0);
	if (ov_settings_load(config, &s, &err) < 0) {
		ov_error_log(&err);
		return 1;
	}
	ret = c->run(&s, argc, argv, &err);
	ov_settings_free(&s);
	if (ret == CLI_USAGE)
		return verb_usage(stderr, c, 2);
	if (ret == CLI_ERROR)
		ov_error_log(&err);
	return ret == 0 ? 0 : 1;
}
