/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef MC_XFRM_ERRORS_H
#define MC_XFRM_ERRORS_H

#include <stdio.h>

/*
 * Reads /proc/net/xfrm_stat's text from in and writes each non-zero counter to out as
 * "NAME VALUE: what it counts; likely: the usual cause" (a counter this table does not know:
 * "NAME VALUE"), or one line saying that every counter is 0. 0, -EBADMSG (in is not in the
 * format "NAME VALUE" per line) or -EIO.
 */
int mc_xfrm_errors_write(FILE *in, FILE *out);

#endif
