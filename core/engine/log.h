/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's logger. Messages go to stderr, one line each. Under systemd (JOURNAL_STREAM
 * names our stderr) each line starts with a `<N>` syslog priority, which journald parses;
 * elsewhere a level word is written instead. Helpers never log above LOG_DEBUG: the caller
 * that decides logs once, with context.
 */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

void mc_log_set_max_level(int level);
int mc_log_get_max_level(void);
/* Forces (or disables) the `<N>` prefix; by default it is detected from JOURNAL_STREAM. */
void mc_log_set_journal(bool journal);

/* `prefix` (may be NULL) is put before the message, e.g. "plugin static: ". */
void mc_log_prefixed(int level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mc_log_vprefixed(int level, const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define mc_log(level, ...) mc_log_prefixed((level), NULL, __VA_ARGS__)
#define mc_log_error(...) mc_log(LOG_ERR, __VA_ARGS__)
#define mc_log_warning(...) mc_log(LOG_WARNING, __VA_ARGS__)
#define mc_log_notice(...) mc_log(LOG_NOTICE, __VA_ARGS__)
#define mc_log_info(...) mc_log(LOG_INFO, __VA_ARGS__)
#define mc_log_debug(...) mc_log(LOG_DEBUG, __VA_ARGS__)

/* Logs with %m standing for strerror(-err) and returns err (systemd's log_error_errno). */
int mc_log_errno(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define mc_log_error_errno(err, ...) mc_log_errno(LOG_ERR, (err), __VA_ARGS__)

#endif
