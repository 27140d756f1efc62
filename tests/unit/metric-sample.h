/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One sample of a registry's render, for the queue's metrics tests. Include after cmocka.h. */
#ifndef MC_TEST_METRIC_SAMPLE_H
#define MC_TEST_METRIC_SAMPLE_H

#include <stdlib.h>
#include <string.h>

#include <meshcrypt/metrics.h>

/* The value of the sample line that starts with `prefix ` in a render of reg; -1 if none. */
static inline double metric(struct mc_metrics *reg, const char *prefix)
{
	char *text = mc_metrics_render(reg, NULL);
	size_t n = strlen(prefix);
	double v = -1;

	assert_non_null(text);
	for (char *line = text; *line;) {
		char *end = strchr(line, '\n');

		if (strncmp(line, prefix, n) == 0 && line[n] == ' ') {
			v = strtod(line + n + 1, NULL);
			break;
		}
		if (!end)
			break;
		line = end + 1;
	}
	free(text);
	return v;
}

#endif /* MC_TEST_METRIC_SAMPLE_H */
