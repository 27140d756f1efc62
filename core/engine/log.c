/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int max_level = LOG_INFO;
/* -1: not decided yet, detect from the environment on first use. */
static atomic_int journal = -1;

void mc_log_set_max_level(int level)
{
	atomic_store(&max_level, level);
}

int mc_log_get_max_level(void)
{
	return atomic_load(&max_level);
}

void mc_log_set_journal(bool on)
{
	atomic_store(&journal, on);
}

static bool use_journal_prefix(void)
{
	int j = atomic_load(&journal);

	if (j < 0) {
		j = getenv("JOURNAL_STREAM") != NULL;
		atomic_store(&journal, j);
	}
	return j;
}

static const char *level_word(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error: ";
	case LOG_WARNING:
		return "warning: ";
	case LOG_DEBUG:
		return "debug: ";
	default:
		return "";
	}
}

void mc_log_vprefixed(int level, const char *prefix, const char *fmt, va_list ap)
{
	int saved_errno = errno; /* so that %m in fmt means what the caller meant */

	if (level > atomic_load(&max_level))
		return;
	flockfile(stderr);
	if (use_journal_prefix())
		fprintf(stderr, "<%d>", level);
	else
		fputs(level_word(level), stderr);
	if (prefix)
		fputs(prefix, stderr);
	errno = saved_errno;
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	errno = saved_errno;
}

void mc_log_prefixed(int level, const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mc_log_vprefixed(level, prefix, fmt, ap);
	va_end(ap);
}

int mc_log_errno(int level, int err, const char *fmt, ...)
{
	va_list ap;

	errno = err < 0 ? -err : err;
	va_start(ap, fmt);
	mc_log_vprefixed(level, NULL, fmt, ap);
	va_end(ap);
	return err;
}
