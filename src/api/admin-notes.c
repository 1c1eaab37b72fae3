/* admin-notes.c: admin.vm.notes.Get and Set: a qube's free-text notes
 * (notes.txt in its folder; notes.c). The file work runs on a worker. */
#include "api-util.h"

#include "qubes-error.h"

#include <string.h>

typedef struct {
    QubesDomain *dom;
    char *text;
} NotesJob;

static void notes_job_free(NotesJob *j)
{
    qubes_domain_unref(j->dom);
    g_free(j->text);
    g_free(j);
}

static NotesJob *notes_job(Call *call, char *text)
{
    NotesJob *j = g_new0(NotesJob, 1);
    j->dom = qubes_domain_ref(call->dest);
    j->text = text;
    return j;
}

static gboolean get_work(gpointer data, GError **error)
{
    NotesJob *j = data;
    j->text = qubes_domain_read_notes(j->dom, error);
    return j->text != NULL;
}

static char *get_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    NotesJob *j = data;
    return ok ? g_strdup(j->text) : NULL;
}

static char *notes_get(Call *call, GError **error)
{
    call_run_worker(call, get_work, get_done, notes_job(call, NULL),
                    (GDestroyNotify)notes_job_free);
    return CALL_ASYNC;
}

static gboolean set_work(gpointer data, GError **error)
{
    NotesJob *j = data;
    return qubes_domain_write_notes(j->dom, j->text, error);
}

static char *set_done(Call *call, gboolean ok, GError **error, gpointer data)
{
    return ok ? g_strdup("") : NULL;
}

/* What the reference lets a note show (libqubes-pure's
 * qubes_pure_code_point_safe_for_display, as near as GLib's Unicode
 * tables tell it): letters, marks, digits, punctuation, symbols, the
 * plain space, tabs and newlines; anything else (controls, other spaces,
 * zero-width and bidirectional formatting, private use, unassigned) shows
 * as '_'. */
static gboolean safe_for_display(gunichar c)
{
    if (c == ' ' || c == '\t' || c == '\n')
        return TRUE;
    switch (g_unichar_type(c)) {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_SPACING_MARK:
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
    case G_UNICODE_CONNECT_PUNCTUATION:
    case G_UNICODE_DASH_PUNCTUATION:
    case G_UNICODE_CLOSE_PUNCTUATION:
    case G_UNICODE_FINAL_PUNCTUATION:
    case G_UNICODE_INITIAL_PUNCTUATION:
    case G_UNICODE_OTHER_PUNCTUATION:
    case G_UNICODE_OPEN_PUNCTUATION:
    case G_UNICODE_CURRENCY_SYMBOL:
    case G_UNICODE_MODIFIER_SYMBOL:
    case G_UNICODE_MATH_SYMBOL:
    case G_UNICODE_OTHER_SYMBOL:
        return TRUE;
    default:
        return FALSE;
    }
}

/* The untrusted payload as UTF-8 text with every code point unsafe to
 * show replaced; NULL with the reference's ProtocolError (in Python's
 * words for the decoding error) when it is not UTF-8. */
static char *sanitise_notes(const char *untrusted, gsize len, GError **error)
{
    GString *out = g_string_sized_new(len);
    gsize pos = 0;
    while (pos < len) {
        guchar b = (guchar)untrusted[pos];
        if (b == 0) { /* valid UTF-8, never safe to show */
            g_string_append_c(out, '_');
            pos++;
            continue;
        }
        gunichar c = g_utf8_get_char_validated(untrusted + pos, len - pos);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            int need = b >= 0xf0 && b <= 0xf4   ? 4
                       : b >= 0xe0 && b <= 0xef ? 3
                       : b >= 0xc2 && b <= 0xdf ? 2
                                                : 0;
            const char *why = !need               ? "invalid start byte"
                              : c == (gunichar)-2 ? "unexpected end of data"
                                                  : "invalid continuation byte";
            g_set_error(error, QUBES_ERROR, QUBES_ERROR_PROTOCOL,
                        "Unable to sanitise qube notes: 'utf-8' codec can't "
                        "decode byte 0x%02x in position %" G_GSIZE_FORMAT
                        ": %s",
                        b, pos, why);
            g_string_free(out, TRUE);
            return NULL;
        }
        if (safe_for_display(c))
            g_string_append_unichar(out, c);
        else
            g_string_append_c(out, '_');
        pos = (gsize)(g_utf8_next_char(untrusted + pos) - untrusted);
    }
    return g_string_free(out, FALSE);
}

static char *notes_set(Call *call, GError **error)
{
    gsize len;
    const char *untrusted = api_payload(call, &len);
    if (len > QUBES_NOTES_MAX) {
        g_autofree char *why =
            g_strdup_printf("Maximum note size is %d bytes (%" G_GSIZE_FORMAT
                            " bytes received)",
                            QUBES_NOTES_MAX, len);
        api_enforce(FALSE, why, error);
        return NULL;
    }
    char *text = sanitise_notes(untrusted, len, error);
    if (!text)
        return NULL;
    call_run_worker(call, set_work, set_done, notes_job(call, text),
                    (GDestroyNotify)notes_job_free);
    return CALL_ASYNC;
}

const Method api_notes_methods[] = {
    {"admin.vm.notes.Get", M_NO_PAYLOAD | M_NO_ARG | M_NOT_DOM0, notes_get},
    {"admin.vm.notes.Set", M_NO_ARG | M_NOT_DOM0, notes_set},
    {NULL},
};
