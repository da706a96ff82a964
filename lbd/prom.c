/*
 * prom.c - writes the Prometheus text exposition format (0.0.4): HELP and
 * TYPE lines, samples, label values escaped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lbd.h"

/* A family's HELP and TYPE lines. */
void
prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the exposition format asks. */
static void
prom_escape(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '"')
			fputs("\\\"", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* name{k1="v1",k2="v2"} with labels = { k1, v1, k2, v2, NULL }; no braces when empty. */
static void
prom_series(FILE *f, const char *name, const char *const *labels)
{
	int	 i;

	fputs(name, f);
	if (labels == NULL || labels[0] == NULL)
		return;
	fputc('{', f);
	for (i = 0; labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
		fprintf(f, "%s%s=\"", i > 0 ? "," : "", labels[i]);
		prom_escape(f, labels[i + 1]);
		fputc('"', f);
	}
	fputc('}', f);
}

void
prom_u64(FILE *f, const char *name, const char *const *labels, uint64_t v)
{
	prom_series(f, name, labels);
	fprintf(f, " %" PRIu64 "\n", v);
}

void
prom_double(FILE *f, const char *name, const char *const *labels, double v)
{
	prom_series(f, name, labels);
	fprintf(f, " %.3f\n", v);
}

/* A family with one unlabelled sample. */
void
prom_one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	prom_family(f, name, type, help);
	prom_u64(f, name, NULL, v);
}

/* One series per value of label key, 1 for current and 0 for the others. */
void
prom_one_hot(FILE *f, const char *name, const char *const *labels0, const char *key,
    const char *const *values, size_t nvalues, const char *current)
{
	const char	*labels[8];
	size_t		 i, n = 0;

	while (labels0 != NULL && labels0[n] != NULL && n < 4) {
		labels[n] = labels0[n];
		n++;
	}
	labels[n] = key;
	labels[n + 2] = NULL;
	for (i = 0; i < nvalues; i++) {
		labels[n + 1] = values[i];
		prom_u64(f, name, labels, strcmp(values[i], current) == 0);
	}
}
