/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SR-IOV resolution from sysfs (hd_resolve), and the RTM_NEWLINK parser
 * (hd_vf_parse_link).
 *
 * Read as text, the input describes a sysfs tree one line at a time, in the
 * shapes tests/sysfs-fixture.h makes:
 *
 *   dev BDF [DRIVER]                a PCI function, bound to DRIVER ("-": none)
 *   vf PF INDEX VF [DRIVER]         a VF: dev VF, VF/physfn -> ../PF, PF/virtfnINDEX -> ../VF
 *   net BDF IFNAME [ID [PORTNAME]]  a netdev of BDF with these phys_port_id and phys_port_name
 *                                   contents ("-": no such file), and class/net/IFNAME
 *   dir PATH                        a directory below the root
 *   file PATH [CONTENT]             a file below the root
 *   link PATH TARGET                a symlink: TARGET "@REL" is ROOT/REL, else "../"... then REL
 *   rec PF INDEX NETDEV [ID]        the recorded resolution handed to hd_resolve()
 *   resolve BDF                     a device to resolve (by default every dev and vf)
 *
 * Tokens are separated by spaces; \s, \n, \t, \\ and \xHH stand for bytes.
 * Names cannot hold '/' or be "." or "..", links can only point inside the
 * tree, and every write goes through real directories (O_NOFOLLOW) before
 * any link exists: whatever the input, nothing outside the tree is touched.
 *
 * The same bytes are also the body of an RTM_NEWLINK message.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/rtnetlink.h>
#include <sys/stat.h>

#include "fuzz/fuzz-util.h"
#include "reconcilers/hostdev/host.h"

#define MAX_LINES 64
#define MAX_TOKENS 6
#define MAX_NAME 64
#define MAX_DEPTH 8
#define MAX_SYMLINKS 128
#define MAX_RESOLVE 8
#define MAX_NETLINK_SIZE 65536

#define DEVICES "devices/pci0000:00"

typedef struct token {
        char *data; /* NUL-terminated; may hold NUL bytes before len */
        size_t len;
} token;

typedef struct pending_link {
        char *path, *target;
} pending_link;

typedef struct fixture {
        const char *root;
        int root_fd;
        pending_link links[MAX_SYMLINKS];
        size_t n_links;
        char **resolve; /* from resolve lines */
        char **devices; /* from dev and vf lines */
        hd_recorded rec;
        bool has_rec;
} fixture;

static char *tmp_root; /* the realpath of the tree's parent */
static bool debug; /* $VIRTFORM_FUZZ_DEBUG: print what each input resolves to, for triage */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        debug = getenv("VIRTFORM_FUZZ_DEBUG");
        tmp_root = realpath(fuzz_tmpdir(), NULL);
        if (!tmp_root)
                fuzz_fail("cannot resolve %s: %m", fuzz_tmpdir());
        return 0;
}

/* ---- the description ------------------------------------------------------- */

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes the escapes of one token in place. */
static size_t unescape(char *s, size_t len) {
        size_t out = 0;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '\\' && i + 1 < len) {
                        char e = s[++i];
                        if (e == 's')
                                c = ' ';
                        else if (e == 'n')
                                c = '\n';
                        else if (e == 't')
                                c = '\t';
                        else if (e == 'x' && i + 2 < len && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
                                c = (char) (hex_value(s[i + 1]) << 4 | hex_value(s[i + 2]));
                                i += 2;
                        } else
                                c = e;
                }
                s[out++] = c;
        }
        s[out] = 0;
        return out;
}

/* Splits a line (modified) into at most MAX_TOKENS tokens. */
static size_t tokenize(char *line, size_t len, token tokens[static MAX_TOKENS]) {
        size_t n = 0, i = 0;

        while (n < MAX_TOKENS) {
                while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
                        i++;
                if (i >= len)
                        break;
                size_t start = i;
                while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
                        i++;
                line[i] = 0; /* the separator, or the line's own terminator */
                tokens[n].data = line + start;
                tokens[n].len = unescape(line + start, i - start);
                n++;
                i++;
        }
        return n;
}

static bool token_is(const token *t, const char *s) {
        return t->len == strlen(s) && memcmp(t->data, s, t->len) == 0;
}

/* A path component: no '/', no NUL, not "." or "..". */
static bool name_ok(const char *s, size_t len) {
        return len > 0 && len <= MAX_NAME && !memchr(s, '/', len) && !memchr(s, 0, len) &&
               !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

static bool token_name_ok(const token *t) {
        return name_ok(t->data, t->len);
}

/* Components that are all name_ok(), at most MAX_DEPTH of them; the count goes to *ret_depth. */
static bool path_ok(const char *s, size_t *ret_depth) {
        size_t depth = 0;

        if (strlen(s) > PATH_MAX / 2)
                return false;
        for (const char *p = s;; depth++) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                if (!name_ok(p, len) || depth >= MAX_DEPTH)
                        return false;
                if (!slash)
                        break;
                p = slash + 1;
        }
        *ret_depth = depth + 1;
        return true;
}

/* ---- building the tree, never through a link -------------------------------- */

/* The directory holding the last component of path, walked with O_NOFOLLOW; created when mkdirs. */
static int open_parent(fixture *fx, const char *path, bool mkdirs, const char **ret_leaf) {
        int fd = fcntl(fx->root_fd, F_DUPFD_CLOEXEC, 3);
        const char *p = path;

        for (const char *slash; fd >= 0 && (slash = strchr(p, '/')); p = slash + 1) {
                char component[MAX_NAME + 1];

                if (slash - p > MAX_NAME)
                        fuzz_fail("path component too long in %s", path);
                memcpy(component, p, (size_t) (slash - p));
                component[slash - p] = 0;
                if (mkdirs)
                        (void) mkdirat(fd, component, 0755);
                int next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                close(fd);
                fd = next;
        }
        *ret_leaf = p;
        return fd;
}

static void make_dir(fixture *fx, const char *path) {
        const char *leaf;
        _cleanup_close_ int fd = open_parent(fx, path, true, &leaf);

        if (fd >= 0)
                (void) mkdirat(fd, leaf, 0755);
}

static void make_file(fixture *fx, const char *path, const char *content, size_t len) {
        const char *leaf;
        _cleanup_close_ int dir_fd = open_parent(fx, path, true, &leaf);
        if (dir_fd < 0)
                return;
        _cleanup_close_ int fd = openat(dir_fd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0 && len > 0 && write(fd, content, len) != (ssize_t) len)
                fuzz_fail("cannot write %s: %m", path);
}

/* Links wait until every directory and file is there: a write never meets one. */
static void add_link(fixture *fx, char *path, char *target) {
        if (!path || !target)
                fuzz_fail("out of memory");
        if (fx->n_links == MAX_SYMLINKS) {
                free(path);
                free(target);
                return;
        }
        fx->links[fx->n_links++] = (pending_link) { path, target };
}

static void make_links(fixture *fx) {
        for (size_t i = 0; i < fx->n_links; i++) {
                const char *leaf;
                _cleanup_close_ int fd = open_parent(fx, fx->links[i].path, false, &leaf);

                if (fd >= 0)
                        (void) symlinkat(fx->links[i].target, fd, leaf);
        }
}

static void fixture_done(fixture *fx) {
        for (size_t i = 0; i < fx->n_links; i++) {
                free(fx->links[i].path);
                free(fx->links[i].target);
        }
        vf_strv_free(fx->resolve);
        vf_strv_free(fx->devices);
        free(fx->rec.pf_netdev);
        free(fx->rec.phys_port_id);
        if (fx->root_fd >= 0)
                close(fx->root_fd);
}

/* ---- the commands ------------------------------------------------------------- */

static const char *strna(const char *s) {
        return s ? s : "n/a";
}

static bool absent(const token *t) {
        return token_is(t, "-");
}

static bool parse_index(const token *t, int *ret) {
        if (t->len == 0 || t->len > 4 || strspn(t->data, "0123456789") != t->len)
                return false;
        *ret = atoi(t->data);
        return true;
}

static void push(char ***v, const char *s) {
        if (vf_strv_length(*v) < MAX_RESOLVE && vf_strv_push(v, s) < 0)
                fuzz_fail("out of memory");
}

static void cmd_dev(fixture *fx, const token *bdf, const token *driver) {
        _cleanup_free_ char *dir = vf_printf(DEVICES "/%s", bdf->data);
        _cleanup_free_ char *override = vf_printf(DEVICES "/%s/driver_override", bdf->data);

        if (!dir || !override)
                fuzz_fail("out of memory");
        make_dir(fx, dir);
        make_file(fx, override, "(null)\n", 7);
        add_link(fx, vf_printf("bus/pci/devices/%s", bdf->data), vf_printf("../../../" DEVICES "/%s", bdf->data));
        push(&fx->devices, bdf->data);
        if (!driver || absent(driver))
                return;

        _cleanup_free_ char *bind = vf_printf("bus/pci/drivers/%s/bind", driver->data);
        _cleanup_free_ char *unbind = vf_printf("bus/pci/drivers/%s/unbind", driver->data);
        if (!bind || !unbind)
                fuzz_fail("out of memory");
        make_file(fx, bind, "", 0);
        make_file(fx, unbind, "", 0);
        add_link(fx, vf_printf(DEVICES "/%s/driver", bdf->data), vf_printf("../../../bus/pci/drivers/%s", driver->data));
}

static void cmd_vf(fixture *fx, const token *pf, int index, const token *vf, const token *driver) {
        cmd_dev(fx, vf, driver);
        add_link(fx, vf_printf(DEVICES "/%s/physfn", vf->data), vf_printf("../%s", pf->data));
        add_link(fx, vf_printf(DEVICES "/%s/virtfn%d", pf->data, index), vf_printf("../%s", vf->data));
}

static void net_attr(fixture *fx, const char *dir, const char *attr, const token *content) {
        if (!content || absent(content))
                return;
        _cleanup_free_ char *path = vf_printf("%s/%s", dir, attr);
        if (!path)
                fuzz_fail("out of memory");
        make_file(fx, path, content->data, content->len);
}

static void cmd_net(fixture *fx, const token *bdf, const token *ifname, const token *id, const token *port_name) {
        _cleanup_free_ char *dir = vf_printf(DEVICES "/%s/net/%s", bdf->data, ifname->data);

        if (!dir)
                fuzz_fail("out of memory");
        make_dir(fx, dir);
        net_attr(fx, dir, "phys_port_id", id);
        net_attr(fx, dir, "phys_port_name", port_name);
        _cleanup_free_ char *address = vf_printf("%s/address", dir);
        if (!address)
                fuzz_fail("out of memory");
        make_file(fx, address, "02:11:22:33:44:55\n", 18);
        add_link(fx, vf_printf("class/net/%s", ifname->data), vf_printf("../../%s", dir));
}

/* "@REL" is ROOT/REL; otherwise up to depth - 1 leading "../", then REL: the target stays in the tree. */
static char *link_target(const char *root, const char *path, const char *target) {
        size_t depth, rel_depth, up = 0;

        if (!path_ok(path, &depth))
                return NULL;
        if (target[0] == '@') {
                if (target[1] && !path_ok(target + 1, &rel_depth))
                        return NULL;
                return vf_printf("%s/%s", root, target + 1);
        }
        const char *rel = target;
        for (; strncmp(rel, "..", 2) == 0 && (rel[2] == '/' || rel[2] == 0); up++)
                rel += rel[2] ? 3 : 2;
        if (up >= depth || (rel[0] && !path_ok(rel, &rel_depth)) || (!rel[0] && up == 0))
                return NULL;
        return strdup(target);
}

static void run_line(fixture *fx, const token *t, size_t n) {
        size_t depth;
        int index;

        /* A NUL byte ends a token read as a string; names refuse it, contents keep it. */
        if (token_is(&t[0], "dev") && n >= 2 && token_name_ok(&t[1]) && (n < 3 || token_name_ok(&t[2])))
                cmd_dev(fx, &t[1], n >= 3 ? &t[2] : NULL);
        else if (token_is(&t[0], "vf") && n >= 4 && token_name_ok(&t[1]) && parse_index(&t[2], &index) &&
                 token_name_ok(&t[3]) && (n < 5 || token_name_ok(&t[4])))
                cmd_vf(fx, &t[1], index, &t[3], n >= 5 ? &t[4] : NULL);
        else if (token_is(&t[0], "net") && n >= 3 && token_name_ok(&t[1]) && token_name_ok(&t[2]))
                cmd_net(fx, &t[1], &t[2], n >= 4 ? &t[3] : NULL, n >= 5 ? &t[4] : NULL);
        else if (token_is(&t[0], "dir") && n >= 2 && path_ok(t[1].data, &depth))
                make_dir(fx, t[1].data);
        else if (token_is(&t[0], "file") && n >= 2 && path_ok(t[1].data, &depth))
                make_file(fx, t[1].data, n >= 3 ? t[2].data : "", n >= 3 ? t[2].len : 0);
        else if (token_is(&t[0], "link") && n >= 3) {
                char *target = link_target(fx->root, t[1].data, t[2].data);
                if (target)
                        add_link(fx, strdup(t[1].data), target);
        } else if (token_is(&t[0], "rec") && n >= 4 && !fx->has_rec) {
                fx->has_rec = true;
                snprintf(fx->rec.pf, sizeof fx->rec.pf, "%s", t[1].data);
                fx->rec.vf_index = atoi(t[2].data);
                fx->rec.pf_netdev = strdup(t[3].data);
                fx->rec.phys_port_id = n >= 5 && !absent(&t[4]) ? strdup(t[4].data) : NULL;
        } else if (token_is(&t[0], "resolve") && n >= 2)
                push(&fx->resolve, t[1].data);
}

static void describe(fixture *fx, const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = malloc(size + 1);
        size_t lines = 0;

        if (!text)
                fuzz_fail("out of memory");
        memcpy(text, data, size);
        text[size] = 0;
        for (size_t start = 0; start < size && lines < MAX_LINES; lines++) {
                char *nl = memchr(text + start, '\n', size - start);
                size_t len = nl ? (size_t) (nl - (text + start)) : size - start;
                token t[MAX_TOKENS];

                text[start + len] = 0;
                size_t n = tokenize(text + start, len, t);
                if (n > 0)
                        run_line(fx, t, n);
                start += len + 1;
        }
}

/* ---- resolving ------------------------------------------------------------------ */

static void check_resolution(const fixture *fx, const char *bdf, int r, const hd_resolution *res, const char *errmsg) {
        fuzz_check(hd_method_to_string(res->method));
        if (r < 0) {
                fuzz_check(r != -ENOMEM);
                fuzz_check(errmsg && errmsg[0]);
                if (!hd_bdf_is_valid(bdf))
                        fuzz_check(r == -EINVAL);
                return;
        }
        fuzz_check(!errmsg);
        fuzz_check(hd_bdf_is_valid(bdf) && streq(res->device, bdf));
        if (!res->is_vf) {
                fuzz_check(res->method == HD_METHOD_NONE && res->vf_index == -1 && !res->pf[0]);
                fuzz_check(!res->pf_netdev && !res->vf_netdev && !res->phys_port_id);
                return;
        }
        fuzz_check(hd_bdf_is_valid(res->pf) && res->vf_index >= 0);
        fuzz_check(res->pf_netdev && res->pf_netdev[0]);
        fuzz_check(res->method > HD_METHOD_NONE && res->method < _HD_METHOD_MAX);
        if (res->method == HD_METHOD_PHYS_PORT_ID)
                fuzz_check(res->vf_netdev && res->phys_port_id);
        if (res->method == HD_METHOD_RECORDED) {
                fuzz_check(fx->has_rec && !res->vf_netdev);
                fuzz_check(streq(res->pf_netdev, fx->rec.pf_netdev) && res->vf_index == fx->rec.vf_index);
        }
}

static void resolve(const fixture *fx, const char *sysfs_root, const char *bdf) {
        _cleanup_free_ char *errmsg = NULL;
        hd_resolution res = { .vf_index = -1 };

        int r = hd_resolve(sysfs_root, bdf, fx->has_rec ? &fx->rec : NULL, &res, &errmsg);
        if (debug && r < 0)
                fprintf(stderr, "resolve %s: %s (%s)\n", bdf, strerror(-r), errmsg);
        else if (debug)
                fprintf(stderr, "resolve %s: vf=%d pf=%s pf_netdev=%s index=%d vf_netdev=%s id=%s driver=%s method=%s\n",
                        bdf, res.is_vf, res.pf, strna(res.pf_netdev), res.vf_index, strna(res.vf_netdev),
                        strna(res.phys_port_id), strna(res.driver), hd_method_to_string(res.method));
        check_resolution(fx, bdf, r, &res, errmsg);
        if (r >= 0)
                hd_resolution_done(&res);
}

static void fuzz_sysfs(const uint8_t *data, size_t size) {
        _cleanup_free_ char *root = vf_printf("%s/sys", tmp_root);
        _cleanup_(fixture_done) fixture fx = { .root = root, .root_fd = -1, .rec.vf_index = -1 };
        static const char *const skeleton[] = { DEVICES, "bus/pci/devices", "bus/pci/drivers", "class/net" };

        if (!root)
                fuzz_fail("out of memory");
        if (mkdir(root, 0755) < 0 || (fx.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                fuzz_fail("cannot make %s: %m", root);
        for (size_t i = 0; i < ELEMENTSOF(skeleton); i++)
                make_dir(&fx, skeleton[i]);
        make_file(&fx, "bus/pci/drivers_probe", "", 0);

        describe(&fx, data, size);
        make_links(&fx);
        char **bdfs = fx.resolve ? fx.resolve : fx.devices;
        for (size_t i = 0; bdfs && bdfs[i]; i++)
                resolve(&fx, root, bdfs[i]);
        fuzz_rmtree(root);
}

/* ---- netlink ---------------------------------------------------------------------- */

static void fuzz_netlink(const uint8_t *data, size_t size) {
        hd_vf_config config;

        if (size > MAX_NETLINK_SIZE)
                return;
        /* Exactly the message: ASan sees any read past it. */
        size_t len = NLMSG_HDRLEN + size;
        _cleanup_free_ struct nlmsghdr *nlh = malloc(len);
        if (!nlh)
                fuzz_fail("out of memory");
        *nlh = (struct nlmsghdr) { .nlmsg_len = (uint32_t) len, .nlmsg_type = RTM_NEWLINK };
        if (size > 0)
                memcpy((uint8_t *) nlh + NLMSG_HDRLEN, data, size);
        /* The first byte is ifi_family, which the parser ignores: it picks the VF. */
        int vf_index = size > 0 ? data[0] % 8 : 0;

        int r = hd_vf_parse_link(nlh, vf_index, &config);
        if (debug)
                fprintf(stderr, "netlink VF %d: %s, vlan %d\n", vf_index, r < 0 ? strerror(-r) : "parsed",
                        r < 0 ? -1 : config.vlan);
        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG);
        if (r == 0 && (config.vlan < 0 || config.vlan > 4095))
                fuzz_fail("VF %d parsed with VLAN %d, outside 0..4095", vf_index, config.vlan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_sysfs(data, size);
        fuzz_netlink(data, size);
        return 0;
}
