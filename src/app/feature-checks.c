/* feature-checks.c: vm-config.* and custom-persist.* checked as master's
 * extensions check them; see feature-checks.h. */
#include "feature-checks.h"

#include "qube-features.h"
#include "qubes-error.h"

#include <string.h>

/* A QubesValueError with master's words. */
#define refuse(error, ...)                                                     \
    qubes_error_fail(error, QUBES_ERROR_VALUE, __VA_ARGS__)

/* vm_config.py on_domain_feature_set */
static gboolean on_vm_config(QubesEvent *ev, gpointer data, GError **error)
{
    const char *feature = qubes_event_get(ev, "feature");
    const char *config = feature + strlen("vm-config.");
    if (strlen(config) > 52)
        return refuse(error, "VM config name must not exceed 46 bytes");
    if (!*config)
        return refuse(error, "Empty config name not allowed");
    if (!g_ascii_isalpha(config[0]) || (guchar)config[0] >= 0x80)
        return refuse(error, "Config name must start with an ASCII letter");
    return TRUE;
}

#define PERSIST_KEY_MAX (63 - (int)strlen("/persist/"))

static gboolean persist_path(const char *path, GError **error)
{
    if (path[0] != '/') /* os.path.isabs */
        return refuse(error, "invalid path '%s'", path);
    return TRUE;
}

/* custom_persist.py _check_key and _check_value */
gboolean qubes_feature_check_custom_persist(const char *feature,
                                            const char *value, GError **error)
{
    const char *key = feature + strlen("custom-persist.");
    if (!*key)
        return refuse(error, "custom-persist key cannot be empty");
    if ((int)strlen(key) > PERSIST_KEY_MAX)
        return refuse(error,
                      "custom-persist key is too long (max %d), ignoring: %s",
                      PERSIST_KEY_MAX, key);
    if (!value)
        value = "";
    if (value[0] == '/')
        return persist_path(value, error);
    g_auto(GStrv) options = g_strsplit(value, ":", -1);
    if (g_strv_length(options) < 5 || options[4][0] != '/')
        return refuse(error, "invalid value format: '%s'", value);
    if (strcmp(options[0], "file") != 0 && strcmp(options[0], "dir") != 0)
        return refuse(error, "invalid resource type option '%s' in value '%s'",
                      options[0], value);
    /* int(mode, 8): blanks around, an optional sign, octal digits with
     * single underscores between them */
    const char *mode = options[3];
    g_autofree char *m = g_strstrip(g_strdup(mode));
    const char *p = m;
    gboolean neg = *p == '-';
    if (*p == '+' || *p == '-')
        p++;
    if (g_str_has_prefix(p, "0o") || g_str_has_prefix(p, "0O"))
        p += 2;
    gboolean ok = *p != '\0';
    guint64 v = 0;
    for (const char *q = p; ok && *q; q++) {
        if (*q == '_' && q > p && q[1] && q[1] != '_')
            continue;
        if (*q < '0' || *q > '7') {
            ok = FALSE;
            break;
        }
        v = v * 8 + (guint64)(*q - '0');
        if (v > 07777)
            v = 010000; /* past the range: stays past it */
    }
    if (!ok || (neg && v) || v > 07777)
        return refuse(error, "invalid mode option '%s' in value '%s'", mode,
                      value);
    g_autofree char *path = g_strjoinv(":", options + 4);
    return persist_path(path, error);
}

/* services.py on_domain_feature_pre_set: the name becomes the QubesDB
 * key /qubes-service/NAME (an app-dispvm.* one is hashed instead) */
static gboolean on_service(QubesEvent *ev, gpointer data, GError **error)
{
    const char *service = qubes_event_get(ev, "feature") + strlen("service.");
    if (!*service)
        return refuse(error, "Service name cannot be empty");
    if (strchr(service, '/'))
        return refuse(error, "Service name cannot contain a slash");
    if (strcmp(service, ".") == 0 || strcmp(service, "..") == 0)
        return refuse(error, "Service name cannot be \".\" or \"..\"");
    if (strlen(service) > 48 && !g_str_has_prefix(service, "app-dispvm."))
        return refuse(error, "Service name must not exceed 48 bytes");
    return TRUE;
}

/* services.py on_domain_feature_set: service.meminfo-writer is no
 * feature any more but maxmem (0: no memory balancing); set, it becomes
 * that and goes. */
static gboolean on_meminfo_writer(QubesEvent *ev, gpointer data, GError **error)
{
    QubesDomain *vm = qubes_domain_of_emitter(ev->subject);
    const char *value = qubes_event_get(ev, "value");
    if (qubes_props_def(&vm->props, "maxmem", NULL)) {
        gboolean ok = value && *value
                          ? qubes_props_reset(&vm->props, "maxmem", error)
                          : qubes_props_set(&vm->props, "maxmem", "0", error);
        if (!ok)
            return FALSE;
    }
    return qubes_domain_feature_remove(vm, "service.meminfo-writer", error);
}

static gboolean on_custom_persist(QubesEvent *ev, gpointer data, GError **error)
{
    return qubes_feature_check_custom_persist(
        qubes_event_get(ev, "feature"), qubes_event_get(ev, "value"), error);
}

void qubes_feature_checks_register(QubesApp *app)
{
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "domain-feature-pre-set:service.*",
                                  on_service, 0, app, NULL);
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "domain-feature-set:service.meminfo-writer",
                                  on_meminfo_writer, 0, app, NULL);
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "domain-feature-pre-set:vm-config.*",
                                  on_vm_config, 0, app, NULL);
    qubes_event_add_class_handler(app->registry, "BaseVM",
                                  "domain-feature-pre-set:custom-persist.*",
                                  on_custom_persist, 0, app, NULL);
}
