/* hostdev.c: the host's block and PCI devices from sysfs (hostdev.h). */
#include "hostdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static const char *sysfs(void)
{
    const char *s = g_getenv("QUBES_SYSFS");
    return s && *s ? s : "/sys";
}

static const char *procfs(void)
{
    const char *s = g_getenv("QUBES_PROCFS");
    return s && *s ? s : "/proc";
}

/* A small sysfs file, stripped; NULL when absent or empty. */
static char *read_attr(const char *dir, const char *name)
{
    g_autofree char *p = g_build_filename(dir, name, NULL);
    char *text = NULL;
    gsize len = 0;
    if (!g_file_get_contents(p, &text, &len, NULL))
        return NULL;
    if (len > 4096)
        text[4096] = 0;
    g_strstrip(text);
    if (!*text) {
        g_free(text);
        return NULL;
    }
    return text;
}

/* A value a device reports about itself, made safe for the protocol:
 * printable ASCII, anything else as '_'. */
static char *safe(char *untrusted)
{
    if (!untrusted)
        return NULL;
    for (char *p = untrusted; *p; p++)
        if ((guchar)*p < 0x20 || (guchar)*p > 0x7e)
            *p = '_';
    return untrusted;
}

static gint strcmp_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- block ---- */

void qubes_host_block_free(QubesHostBlock *b)
{
    if (!b)
        return;
    qubes_dev_info_free(b->info);
    g_free(b->path);
    g_free(b->in_use);
    g_free(b);
}

/* major:minor -> where it is mounted, from mountinfo. */
static GHashTable *mounted_devices(void)
{
    GHashTable *out =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autofree char *p = g_build_filename(procfs(), "self/mountinfo", NULL);
    g_autofree char *text = NULL;
    if (!g_file_get_contents(p, &text, NULL, NULL))
        return out;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit(lines[i], " ", 6);
        if (g_strv_length(f) < 5)
            continue;
        if (!g_hash_table_contains(out, f[2]))
            g_hash_table_insert(out, g_strdup(f[2]), g_strdup(f[4]));
    }
    return out;
}

/* major:minor of the swap devices in use. */
static GHashTable *swap_devices(void)
{
    GHashTable *out =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *p = g_build_filename(procfs(), "swaps", NULL);
    g_autofree char *text = NULL;
    if (!g_file_get_contents(p, &text, NULL, NULL))
        return out;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (guint i = 1; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit_set(lines[i], " \t", 2);
        struct stat st;
        if (f[0] && *f[0] && stat(f[0], &st) == 0 && S_ISBLK(st.st_mode))
            g_hash_table_add(out, g_strdup_printf("%u:%u", major(st.st_rdev),
                                                  minor(st.st_rdev)));
    }
    return out;
}

static gboolean has_entries(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    return d && g_dir_read_name(d) != NULL;
}

static gint by_port(gconstpointer a, gconstpointer b)
{
    const QubesHostBlock *x = *(QubesHostBlock *const *)a;
    const QubesHostBlock *y = *(QubesHostBlock *const *)b;
    return strcmp(x->info->dev.port_id, y->info->dev.port_id);
}

GPtrArray *qubes_host_block_list(void)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_host_block_free);
    g_autofree char *top = g_build_filename(sysfs(), "class/block", NULL);
    g_autoptr(GDir) d = g_dir_open(top, 0, NULL);
    if (!d)
        return out;
    g_autoptr(GHashTable) mounts = mounted_devices();
    g_autoptr(GHashTable) swaps = swap_devices();
    /* partition -> its disk, for the disk's use by its partitions */
    g_autoptr(GHashTable) parent_of =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (const char *name; (name = g_dir_read_name(d));) {
        g_autofree char *dir = g_build_filename(top, name, NULL);
        g_autofree char *dev = read_attr(dir, "dev");
        g_autofree char *size_s = read_attr(dir, "size");
        guint64 size = size_s ? g_ascii_strtoull(size_s, NULL, 10) * 512 : 0;
        unsigned maj = 0, min = 0;
        if (!dev || sscanf(dev, "%u:%u", &maj, &min) != 2)
            continue;
        /* no medium, an unbound loop device, RAM disks */
        if (size == 0 || g_str_has_prefix(name, "ram"))
            continue;
        g_autofree char *port = g_strdup(name);
        for (char *p = port; *p; p++)
            if (*p == '/' || *p == '!')
                *p = '_';
        QubesHostBlock *b = g_new0(QubesHostBlock, 1);
        b->info = qubes_dev_info_new("dom0", port, "block");
        b->path = g_strdup_printf("/dev/%s", name);
        for (char *p = b->path + 5; *p; p++)
            if (*p == '!')
                *p = '/';
        b->size = size;
        b->major = maj;
        b->minor = min;
        g_autofree char *ro = read_attr(dir, "ro");
        b->read_only = ro && strcmp(ro, "1") == 0;
        QubesDevInfo *i = b->info;
        g_free(i->interfaces);
        i->interfaces = g_strdup("b******");
        g_autofree char *backing = safe(read_attr(dir, "loop/backing_file"));
        g_autofree char *model = safe(read_attr(dir, "device/model"));
        g_autofree char *dm = safe(read_attr(dir, "dm/name"));
        i->vendor = safe(read_attr(dir, "device/vendor"));
        i->serial = safe(read_attr(dir, "device/serial"));
        if (!i->serial)
            i->serial = safe(read_attr(dir, "wwid"));
        i->name = g_strdup(backing ? backing : dm ? dm : model);
        g_autofree char *partition = read_attr(dir, "partition");
        if (partition) {
            /* /sys/class/block/sda1 -> .../block/sda/sda1 */
            g_autofree char *real = g_file_read_link(dir, NULL);
            g_autofree char *parent = real ? g_path_get_dirname(real) : NULL;
            g_autofree char *pname =
                parent ? g_path_get_basename(parent) : NULL;
            if (pname) {
                i->parent_port_id = g_strdup(pname);
                i->parent_devclass = g_strdup("block");
                g_hash_table_insert(parent_of, g_strdup(port), g_strdup(pname));
            }
        }
        /* its identity: what is on the port (the loop device's file,
         * the disk's serial, model or name; a partition's number after
         * its disk's) */
        const char *who = backing     ? backing
                          : i->serial ? i->serial
                          : dm        ? dm
                          : model     ? model
                                      : port;
        g_free(i->dev.device_id);
        i->dev.device_id =
            partition && i->parent_port_id
                ? g_strdup_printf("%s:%s", i->parent_port_id, partition)
                : g_strdup(who);
        /* an id is a word of the listings (the key before the first
         * space): what else the kernel says becomes '_' */
        for (char *p = i->dev.device_id; *p; p++)
            if (!g_ascii_isalnum(*p) && !strchr("._-/:+", *p))
                *p = '_';
        g_ptr_array_add(i->data, g_strdup("size"));
        g_ptr_array_add(i->data, g_strdup_printf("%" G_GUINT64_FORMAT, size));
        g_ptr_array_add(i->data, g_strdup("mode"));
        g_ptr_array_add(i->data, g_strdup(b->read_only ? "r" : "w"));
        /* the host's own use of it */
        g_autofree char *key = g_strdup_printf("%u:%u", maj, min);
        g_autofree char *holders = g_build_filename(dir, "holders", NULL);
        const char *mnt = g_hash_table_lookup(mounts, key);
        if (mnt)
            b->in_use = g_strdup_printf("mounted at %s", mnt);
        else if (g_hash_table_contains(swaps, key))
            b->in_use = g_strdup("used as swap");
        else if (has_entries(holders))
            b->in_use = g_strdup("held by another block device");
        else {
            /* the kernel's exclusive claim: mounted (in any mount
             * namespace), swap, device-mapper, md... */
            int fd = open(b->path, O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0 && errno == EBUSY)
                b->in_use = g_strdup("mounted or held (busy)");
            if (fd >= 0)
                close(fd);
        }
        g_ptr_array_add(out, b);
    }
    /* a disk one of whose partitions the host uses is in use too */
    for (guint k = 0; k < out->len; k++) {
        QubesHostBlock *b = out->pdata[k];
        if (!b->in_use)
            continue;
        const char *parent =
            g_hash_table_lookup(parent_of, b->info->dev.port_id);
        for (guint j = 0; parent && j < out->len; j++) {
            QubesHostBlock *p = out->pdata[j];
            if (!p->in_use && strcmp(p->info->dev.port_id, parent) == 0)
                p->in_use = g_strdup_printf("its partition %s is %s",
                                            b->info->dev.port_id, b->in_use);
        }
    }
    g_ptr_array_sort(out, by_port);
    return out;
}

/* ---- PCI ---- */

void qubes_host_pci_free(QubesHostPci *p)
{
    if (!p)
        return;
    qubes_dev_info_free(p->info);
    g_free(p->sysfs_name);
    g_free(p);
}

/* Vendor and device names from pci.ids (hwdata's or pciutils'). */
static void pci_names(const char *vendor, const char *device, char **vname,
                      char **dname)
{
    static const char *const paths[] = {"/usr/share/misc/pci.ids",
                                        "/usr/share/hwdata/pci.ids"};
    for (guint k = 0; k < G_N_ELEMENTS(paths); k++) {
        FILE *f = fopen(paths[k], "re");
        if (!f)
            continue;
        char line[512];
        gboolean in_vendor = FALSE;
        while (fgets(line, sizeof line, f)) {
            g_strchomp(line);
            if (line[0] == '#' || !line[0])
                continue;
            if (line[0] != '\t') {
                if (in_vendor)
                    break;
                if (g_ascii_strncasecmp(line, vendor, 4) == 0 &&
                    line[4] == ' ') {
                    in_vendor = TRUE;
                    *vname = safe(g_strdup(g_strstrip(line + 5)));
                }
            } else if (in_vendor && line[1] != '\t' &&
                       g_ascii_strncasecmp(line + 1, device, 4) == 0 &&
                       line[5] == ' ') {
                *dname = safe(g_strdup(g_strstrip(line + 6)));
                break;
            }
        }
        fclose(f);
        return;
    }
}

static gint pci_by_port(gconstpointer a, gconstpointer b)
{
    const QubesHostPci *x = *(QubesHostPci *const *)a;
    const QubesHostPci *y = *(QubesHostPci *const *)b;
    return strcmp(x->info->dev.port_id, y->info->dev.port_id);
}

char *qubes_host_pci_port(const char *sbdf)
{
    unsigned dom = 0, bus = 0, slot = 0, fn = 0;
    int end = 0;
    if (sscanf(sbdf, "%4x:%2x:%2x.%1x%n", &dom, &bus, &slot, &fn, &end) != 4 ||
        sbdf[end])
        return NULL;
    return dom ? g_strdup_printf("%04x_%02x_%02x.%x", dom, bus, slot, fn)
               : g_strdup_printf("%02x_%02x.%x", bus, slot, fn);
}

GPtrArray *qubes_host_pci_list(void)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)qubes_host_pci_free);
    g_autofree char *top = g_build_filename(sysfs(), "bus/pci/devices", NULL);
    g_autoptr(GDir) d = g_dir_open(top, 0, NULL);
    if (!d)
        return out;
    for (const char *name; (name = g_dir_read_name(d));) {
        g_autofree char *port = qubes_host_pci_port(name);
        if (!port)
            continue;
        g_autofree char *dir = g_build_filename(top, name, NULL);
        g_autofree char *vendor = read_attr(dir, "vendor");
        g_autofree char *device = read_attr(dir, "device");
        g_autofree char *klass = read_attr(dir, "class");
        if (!vendor || !device || !klass || strlen(vendor) != 6 ||
            strlen(device) != 6 || strlen(klass) != 8)
            continue; /* "0x8086", "0x0c0330" */
        QubesHostPci *p = g_new0(QubesHostPci, 1);
        p->sysfs_name = g_strdup(name);
        p->info = qubes_dev_info_new("dom0", port, "pci");
        QubesDevInfo *i = p->info;
        g_free(i->interfaces);
        i->interfaces = g_ascii_strdown(klass + 1, -1);
        i->interfaces[0] = 'p'; /* "p0c0330" */
        g_free(i->dev.device_id);
        i->dev.device_id =
            g_strdup_printf("%s:%s::%s", vendor + 2, device + 2, i->interfaces);
        pci_names(vendor + 2, device + 2, &i->vendor, &i->product);
        /* master's PCIDevice data: the device's SBDF */
        g_ptr_array_add(i->data, g_strdup("sbdf"));
        g_ptr_array_add(i->data, g_strdup(name));
        g_ptr_array_add(out, p);
    }
    g_ptr_array_sort(out, pci_by_port);
    return out;
}

gboolean qubes_host_has_iommu(void)
{
    g_autofree char *p = g_build_filename(sysfs(), "kernel/iommu_groups", NULL);
    return has_entries(p);
}

char *qubes_host_block_fingerprint(void)
{
    g_autofree char *top = g_build_filename(sysfs(), "class/block", NULL);
    g_autoptr(GDir) d = g_dir_open(top, 0, NULL);
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
    for (const char *name; d && (name = g_dir_read_name(d));) {
        g_autofree char *dir = g_build_filename(top, name, NULL);
        g_autofree char *size = read_attr(dir, "size");
        g_ptr_array_add(items,
                        g_strdup_printf("%s=%s", name, size ? size : "0"));
    }
    g_ptr_array_sort(items, (GCompareFunc)strcmp_ptr);
    g_ptr_array_add(items, NULL);
    return g_strjoinv(" ", (char **)items->pdata);
}
