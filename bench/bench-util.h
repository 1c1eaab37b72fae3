/* bench-util.h: what the benchmark programs share. */
#pragma once

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

/* Prints "PROG: WHAT: CAUSE" (the error's message, else errno's) and exits. */
static inline void bench_die(const char *prog, const char *what, GError *error)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what,
            error ? error->message : g_strerror(errno));
    exit(1);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of @n values (sorts them). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
