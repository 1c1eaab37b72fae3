/* api-bench: qubes.xml load/save time and Admin API calls through qubesd,
 * with many domains, beside the reference's if asked.
 *
 *   api-bench --qubesd PATH --base-dir DIR [--domains 1000] [--calls 4000]
 *             [--runs 5] [--clients 1,16] [--xml-only]
 *             [--reference ref_qubesd.py [--reference-calls 400]]
 *
 * Makes a new system in DIR (which must not hold a qubes.xml yet) as a
 * Qubes system is: --domains domains (dom0, ten TemplateVMs, the rest
 * AppVMs spread over them, every third with a feature and a tag, maxmem
 * set on each), a default kernel and template, their storage created in
 * DIR's pool. Then:
 *  - times loading and saving that qubes.xml in this process (the same
 *    library calls qubesd makes), --runs times: the load with its parse
 *    share, the save with its fsyncs and on a tmpfs (fsyncs aside), each
 *    with its target (issue 28: load < 30 ms, save < 40 ms);
 *  - starts qubesd on DIR and times how long until it answers;
 *  - for each client count, runs --calls calls of each read method
 *    (admin.vm.List, admin.vm.property.Get of one of five properties,
 *    property.GetAll, volume.Info of private or root, feature.List; a
 *    random AppVM each) and, with a tenth as many calls, of
 *    admin.vm.property.Set (memory: a qubes.xml save each), from that many
 *    threads, each call on its own connection as Qubes clients do;
 *    --runs times;
 *  - times internal.GetSystemInfo (qrexec's policy asks it before every
 *    call between qubes; target < 2 ms): as its cache serves it, and
 *    after a change (a tag set) whose qube's text it makes anew: right
 *    after the change's answer (the first call after a qubes.xml save,
 *    whatever its method, is slower), after a property.Get in between
 *    (the target's figure), and once more;
 *  - with --qvm-ls PATH, times that qvm-ls listing every qube (the
 *    default format: one admin.vm.List, one GetAll per qube; target
 *    < 300 ms at 1000 domains), and with --client-tool (the Qubes
 *    client's tools runner, ../shared/reference/qubesadmin_tool.py, and
 *    QCAC_SRC set) the client's qvm-ls too, with the ratio;
 *  - prints qubesd's resident memory, now and at its peak (target 50 MiB);
 *  - stops qubesd with SIGTERM and checks that it exits 0;
 *  - with --reference, serves the same qubes.xml with the reference's
 *    qubesd (offline; QCA_SRC and QREXEC_SRC set, see
 *    ../shared/reference/README.md), runs the read methods against it
 *    (--reference-calls a run, at most 3 runs) and GetSystemInfo, and
 *    prints each ratio with its target (10 times the reference's calls per
 *    second).
 * Prints medians over the runs (calls/s, and the p50 and p99 latency of
 * each run). The last line is
 *   list_cps=X get_cps=Y load_ms=Z save_ms=W rss_mib=R
 * with the figures of the largest client count, the save on tmpfs and
 * the peak resident memory.
 */
#include "app.h"
#include "bench-util.h"
#include "qubesadmin.h"

#include <gio/gio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, GError *error)
{
    bench_die("api-bench", what, error);
}

static double now_ms(void)
{
    return (double)g_get_monotonic_time() / 1000.0;
}

#define N_TEMPLATES 10

static char *template_name(guint i)
{
    return g_strdup_printf("tpl-%02u", i);
}

static char *appvm_name(guint i)
{
    return g_strdup_printf("vm-%04u", i);
}

/* Builds the system in @base and returns the number of AppVMs. */
static guint make_system(const char *base, guint domains)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *xml = g_build_filename(base, "qubes.xml", NULL);
    if (g_file_test(xml, G_FILE_TEST_EXISTS)) {
        fprintf(stderr, "api-bench: %s exists; give an empty --base-dir\n",
                xml);
        exit(2);
    }
    g_autoptr(QubesApp) app = qubes_app_open(base, NULL, &error);
    if (!app)
        die(base, error);
    /* A kernel, set as the default as a Qubes system has it (the
     * reference finds no default without one). */
    g_autofree char *kdir =
        g_build_filename(base, "vm-kernels", "6.1.0-bench", NULL);
    g_autofree char *vmlinuz = g_build_filename(kdir, "vmlinuz", NULL);
    if (g_mkdir_with_parents(kdir, 0755) != 0 ||
        !g_file_set_contents(vmlinuz, "", 0, &error) ||
        !qubes_props_set(&app->props, "default_kernel", "6.1.0-bench", &error))
        die(kdir, error);
    const QubesDomainClass *tpl_class = qubes_domain_class_lookup("TemplateVM");
    const QubesDomainClass *app_class = qubes_domain_class_lookup("AppVM");
    guint n_templates = MIN(N_TEMPLATES, domains - 1);
    guint n_appvms = domains - 1 - n_templates;
    for (guint i = 0; i < n_templates + n_appvms; i++) {
        gboolean is_tpl = i < n_templates;
        g_autofree char *name =
            is_tpl ? template_name(i) : appvm_name(i - n_templates);
        g_autofree char *tpl = template_name(i % MAX(n_templates, 1));
        QubesDomain *dom = qubes_app_add_new_domain(
            app, is_tpl ? tpl_class : app_class, name, is_tpl ? "black" : "red",
            is_tpl ? NULL : tpl, NULL, NULL, &error);
        if (!dom)
            die(name, error);
        /* maxmem set: its default asks the hypervisor, which the
         * reference offline refuses (GetAll would fail there) */
        if (!qubes_props_set(&dom->props, "maxmem", "4000", &error))
            die(name, error);
        if (i % 3 == 0 &&
            (!qubes_domain_feature_set(dom, "service.cups", "1", &error) ||
             !qubes_domain_tag_add(dom, "bench", &error)))
            die(name, error);
        g_autoptr(GPtrArray) vols = qubes_domain_volume_refs(dom);
        g_autofree char *dir = qubes_domain_dir_path(dom);
        if (!qubes_storage_create(vols, dir, &error))
            die(name, error);
    }
    /* the default template a Qubes system has (the reference's GetAll
     * fails without one) */
    g_autofree char *tpl0 = template_name(0);
    if (!qubes_props_set(&app->props, "default_template", tpl0, &error))
        die(tpl0, error);
    if (!qubes_app_save(app, &error))
        die(xml, error);
    return n_appvms;
}

/* Load and save of @base's qubes.xml, as qubesd makes them; and the
 * save of a copy on a tmpfs (/dev/shm), where an fsync costs nothing:
 * the save's own work, its fsyncs aside. */
static void bench_load_save(const char *base, int runs, double *load_ms,
                            double *parse_ms, double *save_ms,
                            double *save_nosync_ms)
{
    double load[runs], parse[runs], save[runs], nosync[runs];
    g_autofree char *xml_path = g_build_filename(base, "qubes.xml", NULL);
    g_autofree char *shm = g_strdup("/dev/shm/api-bench-XXXXXX");
    g_autofree char *shm_xml = NULL;
    if (!g_mkdtemp(shm))
        die(shm, NULL);
    shm_xml = g_build_filename(shm, "qubes.xml", NULL);
    for (int r = 0; r < runs; r++) {
        g_autoptr(GError) error = NULL;
        double t0 = now_ms();
        QubesApp *app = qubes_app_open(base, NULL, &error);
        double t1 = now_ms();
        if (!app)
            die("load", error);
        if (!qubes_app_save(app, &error))
            die("save", error);
        double t2 = now_ms();
        g_free(app->xml_path);
        app->xml_path = g_strdup(shm_xml);
        double t3 = now_ms();
        if (!qubes_app_save(app, &error))
            die("save", error);
        double t4 = now_ms();
        qubes_app_free(app);
        load[r] = t1 - t0;
        save[r] = t2 - t1;
        nosync[r] = t4 - t3;
        double t5 = now_ms();
        QubesXml *x = qubes_xml_load(xml_path, &error);
        parse[r] = now_ms() - t5;
        if (!x)
            die("parse", error);
        qubes_xml_free(x);
    }
    unlink(shm_xml);
    rmdir(shm);
    *load_ms = bench_median(load, runs);
    *parse_ms = bench_median(parse, runs);
    *save_ms = bench_median(save, runs);
    *save_nosync_ms = bench_median(nosync, runs);
}

/* The read methods first (those compared with the reference), then
 * the write. */
typedef enum {
    CALL_LIST,
    CALL_GET,
    CALL_GETALL,
    CALL_VOLINFO,
    CALL_FEATLIST,
    CALL_SET,
    CALL_SYSINFO, /* on the internal socket, one client */
    N_CALLS
} CallKind;
#define N_READS CALL_SET

static const char *const call_names[] = {"admin.vm.List",
                                         "admin.vm.property.Get",
                                         "admin.vm.property.GetAll",
                                         "admin.vm.volume.Info",
                                         "admin.vm.feature.List",
                                         "admin.vm.property.Set",
                                         "internal.GetSystemInfo"};

typedef struct {
    const char *socket;
    CallKind kind;
    guint n_appvms;
    guint calls;
    guint32 seed;
    double *lat; /* @calls latencies, ms */
    char *failure;
} Client;

static const char *const get_props[] = {"netvm", "label", "memory", "template",
                                        "kernel"};

static gpointer client_run(gpointer data)
{
    Client *c = data;
    g_autoptr(GRand) rand = g_rand_new_with_seed(c->seed);
    for (guint i = 0; i < c->calls; i++) {
        g_autofree char *vm =
            appvm_name((guint)g_rand_int_range(rand, 0, (gint32)c->n_appvms));
        const char *method = call_names[c->kind], *dest = "dom0", *arg = "";
        g_autofree char *payload = NULL;
        if (c->kind == CALL_GET) {
            dest = vm;
            arg = get_props[g_rand_int_range(rand, 0, G_N_ELEMENTS(get_props))];
        } else if (c->kind == CALL_GETALL || c->kind == CALL_FEATLIST) {
            dest = vm;
        } else if (c->kind == CALL_VOLINFO) {
            dest = vm;
            arg = g_rand_boolean(rand) ? "private" : "root";
        } else if (c->kind == CALL_SET) {
            dest = vm;
            arg = "memory";
            payload = g_strdup_printf("%d", g_rand_int_range(rand, 300, 4000));
        }
        g_autoptr(GError) error = NULL;
        double t0 = now_ms();
        g_autoptr(GBytes) out =
            qa_call_raw(c->socket, "dom0", method, dest, arg, payload,
                        payload ? strlen(payload) : 0, &error);
        c->lat[i] = now_ms() - t0;
        gsize n = 0;
        const char *p = out ? g_bytes_get_data(out, &n) : NULL;
        if (!p || n < 2 || p[0] != '0' || p[1] != '\0') {
            c->failure =
                g_strdup_printf("%s %s %s: %s", method, dest, arg,
                                error ? error->message : "no success answer");
            return NULL;
        }
    }
    return NULL;
}

typedef struct {
    double cps, p50, p99;
} Figures;

/* One run: @calls calls of @kind from @clients threads. */
static Figures run_calls(const char *socket, CallKind kind, guint clients,
                         guint calls, guint n_appvms, guint32 seed)
{
    Client c[clients];
    GThread *th[clients];
    guint per = MAX(calls / clients, 1);
    g_autofree double *all = g_new(double, (gsize)per *clients);
    double t0 = now_ms();
    for (guint i = 0; i < clients; i++) {
        c[i] = (Client){.socket = socket,
                        .kind = kind,
                        .n_appvms = n_appvms,
                        .calls = per,
                        .seed = seed + i,
                        .lat = all + (gsize)per * i};
        th[i] = g_thread_new("client", client_run, &c[i]);
    }
    for (guint i = 0; i < clients; i++)
        g_thread_join(th[i]);
    double wall = now_ms() - t0;
    for (guint i = 0; i < clients; i++)
        if (c[i].failure) {
            fprintf(stderr, "api-bench: %s\n", c[i].failure);
            exit(1);
        }
    guint n = per * clients;
    qsort(all, n, sizeof *all, bench_cmp_double);
    return (Figures){.cps = n / (wall / 1000.0),
                     .p50 = all[n / 2],
                     .p99 = all[MIN(n - 1, (guint)(n * 0.99))]};
}

/* The server running now: stopped at exit when a failure ends the run
 * early, so that no daemon outlives the benchmark. */
static GSubprocess *live_server;

static void kill_live_server(void)
{
    if (live_server)
        g_subprocess_force_exit(live_server);
}

/* Starts @argv (a qubesd serving @socket) and waits until it answers. */
static GSubprocess *start_server(const char *const *argv, const char *base,
                                 const char *socket, const char *log_name,
                                 double *start_ms)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *log = g_build_filename(base, log_name, NULL);
    g_autoptr(GSubprocessLauncher) l =
        g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
    g_subprocess_launcher_set_stderr_file_path(l, log);
    double t0 = now_ms();
    GSubprocess *p = g_subprocess_launcher_spawnv(l, argv, &error);
    if (!p)
        die(argv[0], error);
    live_server = p;
    for (;;) {
        g_autoptr(GBytes) out = qa_call_raw(socket, "dom0", "admin.vm.List",
                                            "dom0", "", NULL, 0, NULL);
        if (out && g_bytes_get_size(out) > 2)
            break;
        if (now_ms() - t0 > 300000 || !g_subprocess_get_identifier(p)) {
            fprintf(stderr, "api-bench: %s did not answer (log: %s)\n", argv[0],
                    log);
            exit(1);
        }
        g_usleep(2000);
    }
    *start_ms = now_ms() - t0;
    return p;
}

/* Stops it with SIGTERM; @clean: it must exit 0. */
static void stop_server(GSubprocess *p, gboolean clean)
{
    g_autoptr(GError) error = NULL;
    live_server = NULL;
    g_subprocess_send_signal(p, SIGTERM);
    if (!g_subprocess_wait(p, NULL, &error))
        die("qubesd", error);
    if (clean &&
        (!g_subprocess_get_if_exited(p) || g_subprocess_get_exit_status(p))) {
        fprintf(stderr, "api-bench: qubesd did not exit cleanly\n");
        exit(1);
    }
}

/* A line of /proc/PID/status in MiB ("VmRSS", "VmHWM"); -1 when unread. */
static double status_mib(GSubprocess *p, const char *key)
{
    const char *pid = g_subprocess_get_identifier(p);
    g_autofree char *path = g_strdup_printf("/proc/%s/status", pid ? pid : "0");
    g_autofree char *text = NULL;
    if (!g_file_get_contents(path, &text, NULL, NULL))
        return -1;
    g_autofree char *needle = g_strconcat("\n", key, ":", NULL);
    const char *at = strstr(text, needle);
    return at ? g_ascii_strtod(at + strlen(needle), NULL) / 1024.0 : -1;
}

/* The median calls/s of each kind and client count. */
typedef struct {
    double cps[N_CALLS][8];
} Results;

static void print_figures(const char *who, CallKind kind, guint clients,
                          Figures *f, int runs, double *cps_out)
{
    double cps[runs], p50[runs], p99[runs];
    for (int r = 0; r < runs; r++) {
        cps[r] = f[r].cps;
        p50[r] = f[r].p50;
        p99[r] = f[r].p99;
    }
    *cps_out = bench_median(cps, runs);
    printf("%-9s %-25s clients=%-2u calls/s %8.0f   p50 %7.3f ms   p99 "
           "%7.3f ms\n",
           who, call_names[kind], clients, *cps_out, bench_median(p50, runs),
           bench_median(p99, runs));
}

/* Runs each kind below @last with each client count against @socket. */
static void run_all(const char *who, const char *socket, CallKind last,
                    GStrv counts, guint calls, int runs, guint n_appvms,
                    Results *res)
{
    for (CallKind k = CALL_LIST; k <= last; k++) {
        for (guint i = 0; counts[i] && i < 8; i++) {
            guint clients = (guint)g_ascii_strtoull(counts[i], NULL, 10);
            guint n = k == CALL_SET ? MAX(calls / 10, clients) : calls;
            Figures f[runs];
            for (int r = 0; r < runs; r++)
                f[r] = run_calls(socket, k, clients, n, n_appvms,
                                 (guint32)(r * 1000 + 1));
            print_figures(who, k, clients, f, runs, &res->cps[k][i]);
        }
    }
}

/* internal.GetSystemInfo on @isock: its figures from one client, and
 * (with @socket) the medians after a change; returns the median time of
 * the answer after a change and a call of another method (ms; 0 when not
 * measured). */
static double sysinfo_figures(const char *who, const char *isock,
                              const char *socket, guint calls, int runs,
                              guint n_appvms, double *cps_out)
{
    Figures f[runs];
    for (int r = 0; r < runs; r++)
        f[r] = run_calls(isock, CALL_SYSINFO, 1, calls, n_appvms,
                         (guint32)(r * 1000 + 7));
    print_figures(who, CALL_SYSINFO, 1, f, runs, cps_out);
    if (!socket)
        return 0;
    enum { N = 21 };
    double t[N], other[N], again[N];
    for (int i = 0; i < N; i++) {
        g_autofree char *vm = appvm_name((guint)i % n_appvms);
        /* a change, then at once the answer: t; another change, a call
         * of another method, then the answer: other; once more: again */
        for (int k = 0; k < 3; k++) {
            g_autoptr(GError) error = NULL;
            g_autofree char *tag = g_strdup_printf("bench-%d-%d", i, k);
            if (k < 2) {
                g_autoptr(GBytes) set =
                    qa_call_raw(socket, "dom0", "admin.vm.tag.Set", vm, tag,
                                NULL, 0, &error);
                if (!set)
                    die("admin.vm.tag.Set", error);
            }
            if (k == 1) {
                g_autoptr(GBytes) get =
                    qa_call_raw(socket, "dom0", "admin.vm.property.Get", vm,
                                "label", NULL, 0, &error);
            }
            double t0 = now_ms();
            g_autoptr(GBytes) out =
                qa_call_raw(isock, "dom0", call_names[CALL_SYSINFO], "dom0", "",
                            NULL, 0, &error);
            (k == 0 ? t : k == 1 ? other : again)[i] = now_ms() - t0;
            if (!out)
                die("internal.GetSystemInfo after a change", error);
        }
    }
    printf("%-9s %-25s after a change %.3f ms; after a change and a "
           "property.Get %.3f ms; the call after that %.3f ms (medians)\n",
           who, call_names[CALL_SYSINFO], bench_median(t, N),
           bench_median(other, N), bench_median(again, N));
    return bench_median(other, N);
}

static const char *verdict(gboolean met)
{
    return met ? "met" : "NOT met";
}

/* The median wall time of @runs listings by qvm-ls (@program, or
 * @program @script qvm-ls) against @socket, its output thrown away. */
static double qvm_ls_ms(const char *program, const char *script,
                        const char *socket, int runs)
{
    g_autofree double *t = g_new0(double, runs);
    for (int i = 0; i < runs; i++) {
        g_autoptr(GSubprocessLauncher) l =
            g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                                      G_SUBPROCESS_FLAGS_STDERR_SILENCE);
        g_subprocess_launcher_setenv(l, "QUBESD_SOCKET", socket, TRUE);
        const char *argv_s[] = {program, script, "qvm-ls", NULL};
        const char *argv_o[] = {program, NULL};
        g_autoptr(GError) error = NULL;
        double t0 = now_ms();
        g_autoptr(GSubprocess) p =
            g_subprocess_launcher_spawnv(l, script ? argv_s : argv_o, &error);
        if (!p || !g_subprocess_wait_check(p, NULL, &error))
            die("qvm-ls", error);
        t[i] = now_ms() - t0;
    }
    return bench_median(t, runs);
}

int main(int argc, char **argv)
{
    g_autofree char *qubesd = NULL, *base = NULL, *clients_arg = NULL,
                    *reference = NULL, *qvm_ls = NULL, *client_tool = NULL;
    gint domains = 1000, calls = 4000, runs = 5, ref_calls = 400;
    gboolean xml_only = FALSE;
    GOptionEntry entries[] = {
        {"qubesd", 0, 0, G_OPTION_ARG_FILENAME, &qubesd, "qubesd program",
         "PATH"},
        {"base-dir", 0, 0, G_OPTION_ARG_FILENAME, &base, "empty folder", "DIR"},
        {"domains", 0, 0, G_OPTION_ARG_INT, &domains,
         "domains, dom0 included (1000)", "N"},
        {"calls", 0, 0, G_OPTION_ARG_INT, &calls, "calls per run (4000)", "N"},
        {"runs", 0, 0, G_OPTION_ARG_INT, &runs, "runs (5)", "N"},
        {"clients", 0, 0, G_OPTION_ARG_STRING, &clients_arg,
         "client counts (1,16)", "N,N"},
        {"xml-only", 0, 0, G_OPTION_ARG_NONE, &xml_only,
         "only qubes.xml's load and save (for a profiler)", NULL},
        {"reference", 0, 0, G_OPTION_ARG_FILENAME, &reference,
         "the reference's ref_qubesd.py (QCA_SRC and QREXEC_SRC set): the "
         "read methods against it too, on the same qubes.xml, and the ratios",
         "PATH"},
        {"reference-calls", 0, 0, G_OPTION_ARG_INT, &ref_calls,
         "calls per run against the reference (400)", "N"},
        {"qvm-ls", 0, 0, G_OPTION_ARG_FILENAME, &qvm_ls,
         "our qvm-ls: times a listing of every qube", "PATH"},
        {"client-tool", 0, 0, G_OPTION_ARG_FILENAME, &client_tool,
         "qubesadmin_tool.py (QCAC_SRC set): the client's qvm-ls too", "PATH"},
        {NULL}};
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(kill_live_server);
    g_autoptr(GOptionContext) ctx = g_option_context_new("");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error))
        die("arguments", error);
    if (!qubesd || !base || domains < 12 || domains > QUBES_MAX_QID + 1 ||
        calls < 10 || runs < 1 || ref_calls < 10) {
        fprintf(stderr,
                "api-bench: need --qubesd, --base-dir, 12 <= "
                "--domains <= %d, --calls >= 10, --reference-calls >= 10, "
                "--runs >= 1\n",
                QUBES_MAX_QID + 1);
        return 2;
    }
    g_auto(GStrv) counts =
        g_strsplit(clients_arg ? clients_arg : "1,16", ",", 0);
    for (guint i = 0; counts[i]; i++) {
        guint64 c = g_ascii_strtoull(counts[i], NULL, 10);
        if (c < 1 || c > 256 || i >= 8) {
            fprintf(stderr, "api-bench: --clients: up to 8 counts, each 1 to "
                            "256\n");
            return 2;
        }
    }
    if (g_mkdir_with_parents(base, 0755) != 0)
        die(base, NULL);

    double t0 = now_ms();
    guint n_appvms = make_system(base, (guint)domains);
    double make_ms = now_ms() - t0;
    g_autofree char *xml = g_build_filename(base, "qubes.xml", NULL);
    struct stat st;
    if (stat(xml, &st) != 0)
        die(xml, NULL);
    printf("domains=%d (%u AppVMs) qubes.xml %lld bytes, made with storage "
           "in %.0f ms\n",
           domains, n_appvms, (long long)st.st_size, make_ms);
    double load_ms, parse_ms, save_ms, save_nosync_ms;
    bench_load_save(base, runs, &load_ms, &parse_ms, &save_ms, &save_nosync_ms);
    printf("qubes.xml load %.2f ms, of which parsing %.2f (target < 30: %s)\n"
           "qubes.xml save %.2f ms with fsyncs, %.2f ms on tmpfs, fsyncs "
           "aside (target < 40: %s)\n",
           load_ms, parse_ms, verdict(load_ms < 30), save_ms, save_nosync_ms,
           verdict(save_nosync_ms < 40));
    if (xml_only)
        return 0;

    g_autofree char *socket = g_build_filename(base, "qubesd.sock", NULL);
    double start_ms;
    const char *ours_argv[] = {qubesd,     "--offline", "--base-dir", base,
                               "--socket", socket,      NULL};
    GSubprocess *p =
        start_server(ours_argv, base, socket, "qubesd.log", &start_ms);
    printf("qubesd answers %.0f ms after its start\n", start_ms);
    Results ours = {0};
    run_all("ours", socket, CALL_SET, counts, (guint)calls, runs, n_appvms,
            &ours);
    g_autofree char *isock =
        g_build_filename(base, "qubesd.internal.sock", NULL);
    double rebuilt_ms =
        sysinfo_figures("ours", isock, socket, MAX((guint)calls / 10, 10), runs,
                        n_appvms, &ours.cps[CALL_SYSINFO][0]);
    double sysinfo_ms = 1000.0 / ours.cps[CALL_SYSINFO][0];
    printf("internal.GetSystemInfo with %d domains: %.3f ms a call from its "
           "cache, %.3f ms with the changed qube's text made anew (target < "
           "2: %s)\n",
           domains, sysinfo_ms, rebuilt_ms,
           verdict(sysinfo_ms < 2 && rebuilt_ms < 2));
    if (qvm_ls) {
        double ms = qvm_ls_ms(qvm_ls, NULL, socket, runs);
        printf("qvm-ls of %d domains: %.0f ms (target < 300: %s)\n", domains,
               ms, verdict(ms < 300));
        if (client_tool) {
            double cms = qvm_ls_ms("/usr/bin/python3", client_tool, socket,
                                   MIN(runs, 3));
            printf("the client's qvm-ls of %d domains: %.0f ms; ours %.1fx "
                   "as fast\n",
                   domains, cms, cms / ms);
        }
    }
    double rss = status_mib(p, "VmRSS"), hwm = status_mib(p, "VmHWM");
    printf("qubesd resident memory with %d domains: %.1f MiB now, %.1f MiB "
           "at its peak (target < 50: %s)\n",
           domains, rss, hwm, verdict(hwm >= 0 && hwm < 50));
    stop_server(p, TRUE);
    g_object_unref(p);

    if (reference) {
        /* The same qubes.xml, just saved by ours, served by the
         * reference (offline) on a socket of its own. */
        g_autofree char *ref_socket = g_build_filename(base, "ref.sock", NULL);
        const char *ref_argv[] = {
            "/usr/bin/python3", reference,  "--base-dir", base,
            "--socket",         ref_socket, NULL};
        GSubprocess *r = start_server(ref_argv, base, ref_socket,
                                      "ref-qubesd.log", &start_ms);
        printf("reference answers %.0f ms after its start\n", start_ms);
        Results ref = {0};
        run_all("reference", ref_socket, N_READS - 1, counts, (guint)ref_calls,
                MIN(runs, 3), n_appvms, &ref);
        g_autofree char *ref_isock = g_strconcat(ref_socket, ".internal", NULL);
        sysinfo_figures("reference", ref_isock, NULL,
                        MAX((guint)ref_calls / 10, 10), MIN(runs, 3), n_appvms,
                        &ref.cps[CALL_SYSINFO][0]);
        printf("reference resident memory: %.1f MiB now, %.1f MiB at its "
               "peak\n",
               status_mib(r, "VmRSS"), status_mib(r, "VmHWM"));
        stop_server(r, FALSE);
        g_object_unref(r);
        for (CallKind k = CALL_LIST; k < N_READS; k++)
            for (guint i = 0; counts[i]; i++) {
                double ratio = ours.cps[k][i] / ref.cps[k][i];
                printf("ratio     %-25s clients=%-2s %6.1fx the reference "
                       "(target >= 10: %s)\n",
                       call_names[k], counts[i], ratio, verdict(ratio >= 10));
            }
        printf("ratio     %-25s clients=1  %6.1fx the reference\n",
               call_names[CALL_SYSINFO],
               ours.cps[CALL_SYSINFO][0] / ref.cps[CALL_SYSINFO][0]);
    }
    guint last = g_strv_length(counts) - 1;
    printf("list_cps=%.0f get_cps=%.0f load_ms=%.2f save_ms=%.2f "
           "rss_mib=%.1f\n",
           ours.cps[CALL_LIST][last], ours.cps[CALL_GET][last], load_ms,
           save_nosync_ms, hwm);
    return 0;
}
