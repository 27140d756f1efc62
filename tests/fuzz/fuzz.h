/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the fuzz harnesses share with the libFuzzer driver (tests/fuzz/run) and with the replay
 * program of the unit suite (replay.c), which calls the same entry point without libFuzzer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash, so that libFuzzer keeps the input and the replay test fails;
 * it must not be compiled out with NDEBUG, as assert() would be. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)
