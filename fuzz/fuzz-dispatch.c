/* fuzz-dispatch: the whole Admin API dispatcher, as a hostile client
 * drives it. Each input becomes one request sent over qubesd's own
 * sockets (server.c: the admin, internal or misc one, by the method's
 * prefix) to a server in
 * this process, over a system on tmpfs seeded with qubes of every class
 * (a template, AppVMs, a network qube, a standalone, a disposable
 * template and one of its DispVMs, a RemoteVM, a qube in a second pool),
 * pools, labels, device assignments and deny lists, firewall rules,
 * notes, features (preload lists among them), tags, and QubesDB
 * features requests of a template and an AppVM. No hypervisor:
 * the runtime is absent, as with qubesd --offline.
 *
 * An input is either a raw request (first byte with bit 7 set: the rest
 * is sent as it is, framing and all), or a shaped one: the next bytes
 * choose the method (every one of every table, with each class for the
 * prefix methods), the source and the destination (existing qubes,
 * dom0, uuid: forms and mutations), the argument and the payload (from
 * dictionaries of real ones - qube, pool, volume, device, label,
 * feature, property and tag names, revision ids, payloads of the right
 * shape - and their mutations, or bytes of the input).
 *
 * Properties: no crash or sanitizer report; every request is answered
 * (or dropped) within 10 s, else the input is a hang (abort); a
 * streaming call (admin.Events, admin.vm.Stats) sends something. The
 * system is made anew every RESET_EVERY inputs, so that removals do not
 * leave the fuzzer with nothing to aim at. */
#include "server.h"

#include "app.h"
#include "orphans.h"
#include "qubes-error.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib-unix.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Every 200 inputs the system is made anew: past that the disposables and
 * clones the inputs made slow each call (a replay of the seed corpus took
 * 70 s with 2000, 9 s with 200, and reached more edges). */
#define RESET_EVERY 200
#define DEADLINE_US (10 * G_USEC_PER_SEC)

static char *top;   /* the temporary folder: base/, sockets */
static char *base;  /* the qubes' base folder */
static char *sock;  /* the admin socket */
static char *isock; /* the internal socket */
static char *msock; /* the misc socket */
static QubesApp *app;
static Server *srv;
static guint inputs;

/* ---- the dictionaries ---- */

static GPtrArray *methods; /* every method name (char*, static or owned) */

static const char *const names[] = {
    "dom0",
    "tpl",
    "work",
    "sys-net",
    "sa",
    "dvm",
    "disp1",
    "remote",
    "inp2",
    "nosuch",
    "work2",
    "WORK",
    "wor",
    "work.",
    "work-dm",
    "Domain-0",
    "default",
    "none",
    "@adminvm",
    "@dispvm:dvm",
    "uuid:00000000-0000-0000-0000-000000000000",
    "uuid:bad",
    "a234567890123456789012345678901234567890",
    "",
    "../work",
    "work+x",
};

static const char *const args[] = {
    "",
    "tpl",
    "work",
    "sys-net",
    "dvm",
    "nosuch",
    "private",
    "root",
    "volatile",
    "kernel",
    "private2",
    "../private",
    "varlibqubes",
    "p2",
    "linux-kernel",
    "file-reflink",
    "nopool",
    "red",
    "black",
    "purple",
    "label-1",
    "1",
    "0",
    "-1",
    "netvm",
    "template",
    "label",
    "memory",
    "maxmem",
    "kernel",
    "default_dispvm",
    "template_for_dispvms",
    "provides_network",
    "qid",
    "name",
    "uuid",
    "ip",
    "mac",
    "virt_mode",
    "devices_denied",
    "include_in_backups",
    "management_dispvm",
    "qrexec",
    "preload-dispvm-max",
    "preload-dispvm",
    "preload-dispvm-delay",
    "preload-dispvm-threshold",
    "internal",
    "servicevm",
    "supported-rpc.qubes.WaitForRunningSystem",
    "tag1",
    "created-by-dom0",
    "dom0+sda",
    "dom0+loop0",
    "dom0+loop0+dead",
    "dom0+_",
    "dom0+_+dead",
    "dom0+00_01.0",
    "dom0+00_02.0+8086_1234",
    "nosuchvm+sda",
    "work+sda",
    "+",
    "a+",
    "+b",
    "1",
    "2",
    "latest",
    "AppVM",
    "TemplateVM",
    "preload",
    "uuid",
    "1000000000000000000000",
};

static const char *const payloads[] = {
    "",
    "name=fz label=red",
    "name=fz2 label=blue pool=p2",
    "name=fz3 label=green pool:private=p2",
    "name=fz label=nosuch",
    "name=work label=red",
    "name= label=red",
    "label=red",
    "True",
    "False",
    "1",
    "0",
    "-1",
    "400",
    "4000",
    "99999999999999999999",
    "tpl",
    "sys-net",
    "dvm",
    "work",
    "nosuch",
    "",
    "pv",
    "pvh",
    "hvm",
    "red",
    "0x123456",
    "0xzzzzzz",
    "mode='required'",
    "mode='auto-attach'",
    "mode='ask-to-attach'",
    "mode='manual'",
    "mode='required' read-only='yes'",
    "mode='required' frontend-dev='xvdz'",
    "mode='required' _frontend-dev='xvdz'",
    "mode='manual' frontend_domain='work'",
    "mode='manual' frontend_domain='sa'",
    "required",
    "auto-attach",
    "ask-to-attach",
    "manual",
    "*******",
    "u******",
    "b******p******",
    "all",
    "action=accept\n",
    "action=drop\n",
    ("action=accept dsthost=10.0.0.1 proto=tcp dstports=22-22\n"
     "action=drop\n"),
    "action=accept dsthost=example.com expire=+3600\naction=drop\n",
    "action=accept specialtarget=dns\naction=drop\n",
    "action=accept proto=icmp icmptype=8\naction=drop\n",
    "action=nope\n",
    "notes \xc3\xa9\x00\x1b[31m",
    "\xff\xfe",
    "name=p3\ndir_path=/dev/shm/nonexistent-fz\n",
    "name=p3\ndir_path=../../etc\n",
    "name=p3\n",
    "revisions_to_keep=2\n",
    "1073741824",
    "1099511627776",
    "10",
    "ok",
    "fail\nwhy",
    "1024\n",
    "uuid",
    "x",
};

static const char *const classes[] = {
    "AppVM",    "TemplateVM", "StandaloneVM", "DispVM",
    "RemoteVM", "AdminVM",    "Nope",         "",
};

/* ---- one request over a socket ---- */

static gboolean wake(gint fd, GIOCondition cond, gpointer data)
{
    return G_SOURCE_CONTINUE;
}

static gboolean tick(gpointer data)
{
    return G_SOURCE_CONTINUE;
}

/* Sends @req to the socket @path and reads the answer, running the main
 * context meanwhile; a streaming call is left once it sent something.
 * Aborts when nothing ends the call within DEADLINE_US. */
static void roundtrip(const char *path, const guint8 *req, gsize len,
                      gboolean stream)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        abort();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "connect %s: %s\n", path, g_strerror(errno));
        abort();
    }
    guint src =
        g_unix_fd_add(fd, G_IO_IN | G_IO_OUT | G_IO_HUP | G_IO_ERR, wake, NULL);
    guint timer = g_timeout_add(50, tick, NULL);
    gint64 deadline = g_get_monotonic_time() + DEADLINE_US;
    gsize sent = 0;
    gboolean shut = FALSE;
    gsize got = 0;
    char buf[65536];
    for (;;) {
        if (sent < len) {
            ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (gsize)n;
            else if (n < 0 && errno != EAGAIN)
                break; /* the server closed: a refusal */
        }
        if (sent == len && !shut) {
            shutdown(fd, SHUT_WR);
            shut = TRUE;
            /* only readiness to read wakes us from now on */
            g_source_remove(src);
            src = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, wake, NULL);
        }
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        if (n > 0) {
            got += (gsize)n;
            if (stream && got)
                break;
            continue;
        }
        if (g_get_monotonic_time() > deadline) {
            fprintf(stderr, "no answer within %d s: a hang\n",
                    (int)(DEADLINE_US / G_USEC_PER_SEC));
            abort();
        }
        g_main_context_iteration(NULL, TRUE);
    }
    g_source_remove(src);
    g_source_remove(timer);
    close(fd);
    /* the server sees the close, and finishes what it left */
    for (int i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
        ;
}

static void call(const char *method, const char *arg, const char *src,
                 const char *dest, const void *payload, gsize plen)
{
    g_autofree char *head =
        g_strdup_printf("%s+%s %s name %s", method, arg, src, dest);
    gsize hlen = strlen(head) + 1;
    g_autofree guint8 *req = g_malloc(hlen + plen);
    memcpy(req, head, hlen);
    if (plen)
        memcpy(req + hlen, payload, plen);
    const char *path = g_str_has_prefix(method, "internal.") ? isock
                       : g_str_has_prefix(method, "qubes.")  ? msock
                                                             : sock;
    gboolean stream = strcmp(method, "admin.Events") == 0 ||
                      strcmp(method, "admin.vm.Stats") == 0;
    roundtrip(path, req, hlen + plen, stream);
}

static void seed(const char *method, const char *dest, const char *arg,
                 const char *payload)
{
    call(method, arg, "dom0", dest, payload, strlen(payload));
}

/* ---- the system ---- */

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void make_system(void)
{
    g_autofree char *kdir = g_build_filename(base, "vm-kernels", "6.1.0", NULL);
    g_mkdir_with_parents(kdir, 0755);
    for (const char *const *f =
             (const char *const[]){"vmlinuz", "initramfs", "modules.img", NULL};
         *f; f++) {
        g_autofree char *p = g_build_filename(kdir, *f, NULL);
        g_file_set_contents(p, "kernel", -1, NULL);
    }
    GError *err = NULL;
    app = qubes_app_open(base, NULL, &err);
    if (!app) {
        fprintf(stderr, "qubes_app_open: %s\n", err->message);
        abort();
    }
    qubes_app_set_aside_orphans(app);
    srv = server_new(app, sock, &err);
    if (!srv) {
        fprintf(stderr, "server_new: %s\n", err->message);
        abort();
    }
    srv->request_timeout = 5;
    /* no profile: a backup would spend seconds deriving keys per call */
    g_free(srv->api->backup_dir);
    srv->api->backup_dir = g_build_filename(top, "backup-profiles", NULL);
    g_free(srv->api->qubesdb_dir);
    srv->api->qubesdb_dir = g_build_filename(top, "qubesdb", NULL);
    g_free(srv->api->paused_list);
    srv->api->paused_list = g_build_filename(top, "paused.list", NULL);
    /* what a template and an AppVM ask for (qubes.FeaturesRequest) */
    static const char *const requests[] = {
        "tpl/features-request/qrexec",
        "1",
        "tpl/features-request/os-version",
        "12",
        "tpl/features-request/boot-mode.kernelopts.m",
        "a b",
        "tpl/features-request/boot-mode.name.m",
        "M",
        "tpl/features-request/supported-service.x",
        "1",
        "work/features-request/supported-rpc.y",
        "1",
        "work/qubes-tools/os",
        "Windows",
        "work/qubes-tools/qrexec",
        "1",
        NULL};
    for (const char *const *r = requests; *r; r += 2) {
        g_autofree char *p = g_build_filename(top, "qubesdb", r[0], NULL);
        g_autofree char *dir = g_path_get_dirname(p);
        g_mkdir_with_parents(dir, 0755);
        g_file_set_contents(p, r[1], -1, NULL);
    }
    g_autofree char *pdir = g_build_filename(top, "p2", NULL);
    g_autofree char *padd =
        g_strdup_printf("name=p2\ndir_path=%s\nrevisions_to_keep=2\n", pdir);
    seed("admin.pool.Add", "dom0", "file-reflink", padd);
    seed("admin.label.Create", "dom0", "purple", "0x800080");
    seed("admin.vm.Create.TemplateVM", "dom0", "", "name=tpl label=black");
    seed("admin.vm.Create.AppVM", "dom0", "tpl", "name=work label=red");
    seed("admin.vm.Create.AppVM", "dom0", "tpl", "name=sys-net label=red");
    seed("admin.vm.property.Set", "sys-net", "provides_network", "True");
    seed("admin.vm.property.Set", "work", "netvm", "sys-net");
    seed("admin.vm.Create.StandaloneVM", "dom0", "", "name=sa label=green");
    seed("admin.vm.Create.AppVM", "dom0", "tpl", "name=dvm label=purple");
    seed("admin.vm.property.Set", "dvm", "template_for_dispvms", "True");
    seed("admin.vm.Create.RemoteVM", "dom0", "", "name=remote label=red");
    seed("admin.vm.CreateInPool.AppVM", "dom0", "tpl",
         "name=inp2 label=blue pool=p2");
    seed("admin.vm.CreateDisposable", "dvm", "", "");
    seed("admin.property.Set", "dom0", "default_dispvm", "dvm");
    seed("admin.vm.firewall.Set", "work", "",
         "action=accept dsthost=10.0.0.1 proto=tcp dstports=22-22\n"
         "action=accept dsthost=example.com expire=+3600\n"
         "action=accept specialtarget=dns\naction=drop\n");
    seed("admin.vm.notes.Set", "work", "", "some notes");
    seed("admin.vm.tag.Set", "work", "tag1", "");
    for (const char *const *f =
             (const char *const[]){
                 "qrexec", "supported-rpc.qubes.WaitForRunningSystem", NULL};
         *f; f++)
        seed("admin.vm.feature.Set", "tpl", *f, "1");
    seed("admin.vm.feature.Set", "dvm", "preload-dispvm-max", "2");
    seed("admin.vm.feature.Set", "work", "servicevm", "1");
    seed("admin.vm.device.block.Assign", "work", "dom0+loop0",
         "mode='required'");
    seed("admin.vm.device.pci.Assign", "sa", "dom0+00_02.0", "mode='required'");
    seed("admin.vm.device.denied.Add", "work", "", "u******");
    seed("admin.vm.volume.Resize", "work", "private", "1073741824");
}

static void drop_system(void)
{
    server_flush_saves(srv);
    server_free(srv);
    srv = NULL;
    qubes_app_free(app);
    app = NULL;
    while (g_main_context_iteration(NULL, FALSE))
        ;
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    g_autofree char *pdir = g_build_filename(top, "p2", NULL);
    nftw(pdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void quiet(const gchar *domain, GLogLevelFlags level,
                  const gchar *message, gpointer data)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
        fprintf(stderr, "%s: %s\n", domain ? domain : "", message);
        abort();
    }
}

static void add_method_names(const Method *table)
{
    for (const Method *m = table; m->name; m++) {
        if (!(m->flags & M_PREFIX)) {
            g_ptr_array_add(methods, (gpointer)m->name);
            continue;
        }
        for (guint i = 0; i < G_N_ELEMENTS(classes); i++)
            g_ptr_array_add(methods, g_strconcat(m->name, classes[i], NULL));
    }
}

static void cleanup_at_exit(void)
{
    if (srv)
        drop_system();
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_log_set_default_handler(quiet, NULL);
    const char *shm = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR)
                          ? "/dev/shm"
                          : g_get_tmp_dir();
    top = g_build_filename(shm, "fuzz-dispatch-XXXXXX", NULL);
    if (!g_mkdtemp(top))
        abort();
    base = g_build_filename(top, "qubes", NULL);
    sock = g_build_filename(top, "qubesd.sock", NULL);
    isock = g_build_filename(top, "qubesd.internal.sock", NULL);
    msock = g_build_filename(top, "qubesd.misc.sock", NULL);
    methods = g_ptr_array_new();
    const Method *const tables[] = {
        api_vm_methods,       api_lifecycle_methods, api_property_methods,
        api_feature_methods,  api_tag_methods,       api_label_methods,
        api_pool_methods,     api_volume_methods,    api_notes_methods,
        api_firewall_methods, api_device_methods,    api_events_methods,
        api_import_methods,   api_internal_methods,  api_misc_methods,
    };
    for (guint i = 0; i < G_N_ELEMENTS(tables); i++)
        add_method_names(tables[i]);
    g_ptr_array_add(methods, (gpointer) "admin.vm.NoSuch");
    g_ptr_array_add(methods, (gpointer) "admin.vm.device.usb.Assign");
    make_system();
    atexit(cleanup_at_exit);
    return 0;
}

/* The next byte of the input, 0 past its end. */
static guint8 take(const uint8_t **data, size_t *size)
{
    if (!*size)
        return 0;
    (*size)--;
    return *(*data)++;
}

/* A choice from @dict (n entries), or, for the values past it, a
 * mutation of one: a character added, one dropped, or upper case. */
static char *choose(const char *const *dict, guint n, guint8 sel, guint8 how)
{
    const char *s = dict[sel % n];
    if (sel < 200 || !*s)
        return g_strdup(s);
    switch (how % 4) {
    case 0:
        return g_strdup_printf("%s%c", s, "x.-_+~ "[how % 7]);
    case 1:
        return g_strndup(s, strlen(s) - 1);
    case 2:
        return g_ascii_strup(s, -1);
    default:
        return g_strdup_printf("%c%s", "x.-_+~ "[how % 7], s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > QUBES_REQUEST_MAX + 16)
        return 0;
    if (++inputs % RESET_EVERY == 0) {
        drop_system();
        make_system();
    }
    guint8 mode = take(&data, &size);
    if (mode & 0x80) {
        /* raw bytes, framing and all, to either socket */
        roundtrip(mode & 1 ? isock : sock, data, size, TRUE);
        return 0;
    }
    guint8 m = take(&data, &size), s = take(&data, &size),
           d = take(&data, &size), a = take(&data, &size),
           p = take(&data, &size), how = take(&data, &size);
    const char *method = methods->pdata[m % methods->len];
    /* mostly dom0 as the source: a qube's calls are mostly refused */
    g_autofree char *src =
        s < 192 ? g_strdup("dom0") : choose(names, G_N_ELEMENTS(names), s, how);
    g_autofree char *dest = choose(names, G_N_ELEMENTS(names), d, how);
    /* the rest of the input: "ARG\0PAYLOAD" when chosen */
    const uint8_t *nul = memchr(data, 0, size);
    g_autofree char *arg = NULL;
    const void *payload;
    gsize plen;
    g_autofree char *pchoice = NULL;
    if (a == 255) {
        arg = g_strndup((const char *)data, nul ? (gsize)(nul - data) : size);
        for (char *c = arg; *c; c++)
            if (*c <= ' ' || *c > '~')
                *c = '_';
    } else {
        arg = choose(args, G_N_ELEMENTS(args), a, how);
    }
    if (p == 255) {
        payload = nul ? nul + 1 : data + size;
        plen = nul ? size - (gsize)(nul + 1 - data) : 0;
    } else if (p >= 128) {
        payload = data;
        plen = size;
    } else {
        pchoice = choose(payloads, G_N_ELEMENTS(payloads), p, how);
        payload = pchoice;
        plen = strlen(pchoice);
    }
    call(method, arg, src, dest, payload, plen);
    return 0;
}
