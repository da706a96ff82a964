/*
 * test_lbctl.c - lbctl's command grammar and its --help text checked
 * against the daemon's command table (the `help` reply): a command,
 * subcommand or argument added on one side fails here until the other
 * side has it too. lbctl.c is compiled into this test, its main renamed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int	 lbctl_main(int, char **);
#define main lbctl_main
#include "../../lbd/lbctl.c"
#undef main

#define FORM_MAX	256	/* bytes of one usage line */
/* The daemon's arguments lbctl gives itself (it walks the pages), not typed by users. */
#define LBCTL_OWN_ARGS	" [from CURSOR]"

/* Appends word to a usage line being built ("" starts it). */
static void
form_add(char *dst, const char *prefix, const char *word, const char *open, const char *close)
{
	if (snprintf(dst, FORM_MAX, "%s%s%s%s%s", prefix, prefix[0] != '\0' ? " " : "", open,
	    word, close) >= FORM_MAX)
		fail_msg("usage line too long: %s %s", prefix, word);
}

/*
 * Every complete command of lbctl's grammar from table on, written as the
 * daemon's help writes it: "sticky get IP [SERVICE]", keywords that lead to
 * the same place joined ("enable|disable|drain"), an optional argument in
 * brackets.
 */
static void
grammar_forms(const struct token *table, const char *prefix, json_t *out)
{
	const struct token *t, *u;
	char		 form[FORM_MAX], word[FORM_MAX];
	bool		 optional = false, has_arg = false;

	for (t = table; t->type != TOK_END; t++) {
		optional |= t->type == TOK_NONE;
		has_arg |= t->type == TOK_ARG;
	}
	for (t = table; t->type != TOK_END; t++) {
		switch (t->type) {
		case TOK_NONE:
			if (!has_arg)
				json_array_append_new(out, json_string(prefix));
			break;
		case TOK_ARG:
			form_add(form, prefix, t->word, optional ? "[" : "", optional ? "]" : "");
			grammar_forms(t->next, form, out);
			break;
		case TOK_KEYWORD:
			snprintf(word, sizeof(word), "%s", t->word);
			if (t->action == ACT_NONE) {
				/* Keywords without an action of their own that lead on alike: one "a|b". */
				for (u = table; u < t; u++)
					if (u->type == TOK_KEYWORD && u->action == ACT_NONE &&
					    u->next == t->next)
						break;
				if (u < t)
					break;
				for (u = t + 1; u->type != TOK_END; u++)
					if (u->type == TOK_KEYWORD && u->action == ACT_NONE &&
					    u->next == t->next) {
						view_append(word, "|", sizeof(word));
						view_append(word, u->word, sizeof(word));
					}
			}
			form_add(form, prefix, word, "", "");
			grammar_forms(t->next, form, out);
			break;
		default:
			break;
		}
	}
}

/* The daemon's command lines, as its `help` reply lists them, less LBCTL_OWN_ARGS. */
static json_t *
daemon_forms(void)
{
	struct lbd	 lbd;
	json_t		*r, *list, *out, *v;
	char		 form[FORM_MAX], *own;
	size_t		 i;
	bool		 monitor;

	memset(&lbd, 0, sizeof(lbd));
	r = control_handle(&lbd, "help", &monitor);
	assert_non_null(r);
	list = json_object_get(r, "commands");
	assert_true(json_is_array(list));
	assert_non_null(out = json_array());
	json_array_foreach(list, i, v) {
		assert_true(json_is_string(v));
		snprintf(form, sizeof(form), "%s", json_string_value(v));
		if ((own = strstr(form, LBCTL_OWN_ARGS)) != NULL)
			memmove(own, own + strlen(LBCTL_OWN_ARGS), strlen(own + strlen(LBCTL_OWN_ARGS)) + 1);
		json_array_append_new(out, json_string(form));
	}
	json_decref(r);
	return out;
}

/* lbctl parses exactly the daemon's commands, in the same order. */
static void
test_grammar_matches_daemon(void **state)
{
	json_t	*want = daemon_forms(), *got;
	char	*w, *g;

	assert_non_null(got = json_array());
	grammar_forms(t_main, "", got);
	w = json_dumps(want, 0);
	g = json_dumps(got, 0);
	if (!json_equal(want, got))
		fail_msg("lbctl's grammar %s differs from the daemon's commands %s", g, w);
	/* Not vacuous: the table has every command and sticky's subcommands. */
	assert_true(json_array_size(want) >= 12);
	free(w);
	free(g);
	json_decref(want);
	json_decref(got);
}

/* lbctl --help lists each of them at the start of a line. */
static void
test_usage_lists_daemon(void **state)
{
	json_t	*want = daemon_forms(), *v;
	char	*text = NULL, line[FORM_MAX + 8], *p;
	size_t	 len = 0, i;
	FILE	*f;

	assert_non_null(f = open_memstream(&text, &len));
	usage(f);
	fclose(f);
	json_array_foreach(want, i, v) {
		snprintf(line, sizeof(line), "\n  %s", json_string_value(v));
		p = strstr(text, line);
		if (p == NULL || (p[strlen(line)] != ' ' && p[strlen(line)] != '\n'))
			fail_msg("lbctl --help does not list \"%s\"", json_string_value(v));
	}
	free(text);
	json_decref(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grammar_matches_daemon),
		cmocka_unit_test(test_usage_lists_daemon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
