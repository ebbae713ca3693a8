/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oci-vtpm admin tool: one verb per entry of commands[] (oci-vtpm.c),
 * one file per group of verbs. A verb's handler parses its arguments,
 * calls lib/admin.c and prints what it returns; it never exits.
 */
#ifndef OCI_VTPM_CLI_H
#define OCI_VTPM_CLI_H

#include <json-c/json.h>
#include <stdbool.h>

#include "oci-vtpm/config.h"
#include "oci-vtpm/error.h"

#define CLI_PROG "oci-vtpm"

/* What a handler returns besides 0. */
enum {
	CLI_ERROR = -1,	   /* err says why; main logs it; exit status 1 */
	CLI_REPORTED = -2, /* the handler said why on stderr; exit status 1 */
	CLI_USAGE = -3,	   /* bad arguments: main prints the verb's usage; exit status 2 */
};

/* argv[0] is the verb, argv[1..argc-1] its arguments. */
typedef int cli_handler(const struct ov_settings *s, int argc, char **argv, ov_error *err);

/* keys.c */
cli_handler cli_init, cli_rotate_key;
/* archive.c */
cli_handler cli_list, cli_inspect, cli_export, cli_import, cli_rm, cli_restore;
/* gc.c */
cli_handler cli_gc;
cli_handler cli_top;
/* log.c */
cli_handler cli_log;
/* pool.c */
cli_handler cli_pool;
/* cdi.c */
cli_handler cli_cdi;

/* Is arg exactly "--json"? */
bool cli_is_json(const char *arg);

/* Print JSON on stdout, one line or pretty, then a newline. */
void cli_print_json(json_object *o, bool pretty);

#endif
