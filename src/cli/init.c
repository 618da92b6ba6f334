/*
 * init: `postgate init DIR` makes a self-contained instance — configuration,
 * self-signed certificate, accounts store with one domain, Maildir root — in
 * a new or empty directory, with paths relative to DIR so the instance can be
 * moved. It never writes into a directory that holds anything, never
 * overwrites a file, and when it fails half-way it removes exactly what it
 * created and nothing else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/internal.h"
#include "core/span.h"
#include "tls/cert.h"

#define INIT_DEFAULT_DOMAIN "example.test"
#define INIT_DAEMON_USER    "postgate" /* who postgated runs as when started by root */
#define INIT_CERT_DAYS                                                            \
	825 /* the longest validity browsers and mail clients accepted since 2018 \
	     */
#define INIT_UNDO_MAX 16

struct init_undo {
	size_t count;
	struct {
		char path[CONFIG_PATH_MAX];
		bool is_dir;
	} entries[INIT_UNDO_MAX];
};

struct init_paths {
	char dir[CONFIG_PATH_MAX];
	char config[CONFIG_PATH_MAX];
	char tls_dir[CONFIG_PATH_MAX];
	char cert[CONFIG_PATH_MAX];
	char key[CONFIG_PATH_MAX];
	char state_dir[CONFIG_PATH_MAX];
	char maildir_root[CONFIG_PATH_MAX];
	char accounts_db[CONFIG_PATH_MAX];
};

static void undo_push(struct init_undo *undo, const char *path, bool is_dir)
{
	/* The fixed number of things init makes fits; a miss here is our bug. */
	if (undo->count == INIT_UNDO_MAX)
		return;
	snprintf(undo->entries[undo->count].path, sizeof(undo->entries[undo->count].path), "%s",
		 path);
	undo->entries[undo->count].is_dir = is_dir;
	undo->count++;
}

/* Remove what was made, newest first. Entries that are not there (a journal
 * SQLite did not leave) are skipped. */
static void undo_run(struct init_undo *undo)
{
	while (undo->count > 0) {
		undo->count--;
		if (undo->entries[undo->count].is_dir)
			rmdir(undo->entries[undo->count].path);
		else
			unlink(undo->entries[undo->count].path);
	}
}

static int path_join(char *out, const char *dir, const char *name, struct error *err)
{
	int n = snprintf(out, CONFIG_PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || n >= CONFIG_PATH_MAX)
		return error_set(err, ERROR_DATA, "path too long: %s/%s", dir, name);
	return 0;
}

static int paths_make(const char *dir, struct init_paths *paths, struct error *err)
{
	size_t len = strlen(dir);

	/* "inst/" and "inst" are the same directory; keep "/" itself. */
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 0)
		return error_set(err, ERROR_USAGE, "the directory name is empty");
	if (len >= sizeof(paths->dir))
		return error_set(err, ERROR_DATA, "path too long: %s", dir);
	memcpy(paths->dir, dir, len);
	paths->dir[len] = '\0';
	if (path_join(paths->config, paths->dir, "postgate.conf", err) < 0 ||
	    path_join(paths->tls_dir, paths->dir, "tls", err) < 0 ||
	    path_join(paths->cert, paths->dir, "tls/cert.pem", err) < 0 ||
	    path_join(paths->key, paths->dir, "tls/key.pem", err) < 0 ||
	    path_join(paths->state_dir, paths->dir, "state", err) < 0 ||
	    path_join(paths->maildir_root, paths->dir, "mail", err) < 0 ||
	    path_join(paths->accounts_db, paths->dir, "state/accounts.db", err) < 0)
		return -1;
	return 0;
}

/* 1 when dir must be made, 0 when it is an empty directory, else -1. */
static int check_target(const struct init_paths *paths, struct error *err)
{
	struct stat st;
	struct dirent *entry;
	DIR *d;

	if (stat(paths->dir, &st) < 0) {
		if (errno == ENOENT)
			return 1;
		return error_set(err, ERROR_IO, "cannot use %s: %s", paths->dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return error_set(err, ERROR_EXISTS, "%s exists and is not a directory", paths->dir);
	if (access(paths->config, F_OK) == 0)
		return error_set(err, ERROR_EXISTS,
				 "%s exists already: %s holds an instance; nothing was changed",
				 paths->config, paths->dir);
	if ((d = opendir(paths->dir)) == NULL)
		return error_set(err, ERROR_IO, "cannot read %s: %s", paths->dir, strerror(errno));
	while ((entry = readdir(d)) != NULL) {
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
			error_set(err, ERROR_EXISTS,
				  "%s is not empty (it holds %s): init only writes into a new or "
				  "empty directory; nothing was changed",
				  paths->dir, entry->d_name);
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

static int make_dir(const char *path, mode_t mode, struct init_undo *undo, struct error *err)
{
	if (mkdir(path, mode) < 0)
		return error_set(err, errno == EEXIST ? ERROR_EXISTS : ERROR_IO,
				 "cannot create %s: %s", path, strerror(errno));
	undo_push(undo, path, true);
	/* The exact mode, whatever the umask. */
	if (chmod(path, mode) < 0)
		return error_set(err, ERROR_IO, "cannot set the mode of %s: %s", path,
				 strerror(errno));
	return 0;
}

static int write_file(const char *path, mode_t mode, const char *text, struct init_undo *undo,
		      struct error *err)
{
	size_t len = strlen(text), done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0)
		return error_set(err, errno == EEXIST ? ERROR_EXISTS : ERROR_IO,
				 "cannot create %s: %s", path, strerror(errno));
	undo_push(undo, path, false);
	if (fchmod(fd, mode) < 0)
		goto fail;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		done += (size_t) n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	error_set(err, ERROR_IO, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int make_store(const struct init_paths *paths, const char *domain, struct init_undo *undo,
		      struct error *err)
{
	static const char *const sqlite_companions[] = { "-journal", "-wal", "-shm" };
	struct store_domain row;
	struct store *store = NULL;

	/* state/ was made empty by us a moment ago: whatever the backend leaves
	 * under these names is ours. */
	undo_push(undo, paths->accounts_db, false);
	for (size_t i = 0; i < ARRAY_LEN(sqlite_companions); i++) {
		char path[CONFIG_PATH_MAX];

		snprintf(path, sizeof(path), "%s%s", paths->accounts_db, sqlite_companions[i]);
		undo_push(undo, path, false);
	}
	if (store_open(paths->accounts_db, true, &store, err) < 0)
		return -1;
	memset(&row, 0, sizeof(row));
	snprintf(row.name, sizeof(row.name), "%s", domain);
	if (store_domain_add(store, &row, err) < 0) {
		store_close(store);
		return -1;
	}
	store_close(store);
	return 0;
}

/* As root, hand the writable parts to the daemon's user when it exists already. */
static int give_to_daemon_user(const struct init_paths *paths, bool *is_given_out,
			       struct error *err)
{
	const char *const owned[] = { paths->state_dir, paths->accounts_db, paths->maildir_root };
	struct passwd *pw;

	*is_given_out = false;
	if (geteuid() != 0 || (pw = getpwnam(INIT_DAEMON_USER)) == NULL)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(owned); i++)
		if (chown(owned[i], pw->pw_uid, pw->pw_gid) < 0)
			return error_set(err, ERROR_IO, "cannot give %s to the user %s: %s",
					 owned[i], INIT_DAEMON_USER, strerror(errno));
	*is_given_out = true;
	return 0;
}

static int config_text_make(const char *hostname, const char *user, char *out, size_t out_cap,
			    struct error *err)
{
	char now[32];
	int n;

	cli_time_format((int64_t) time(NULL), now, sizeof(now));
	n = snprintf(out, out_cap,
		     "# postgate instance made by `postgate init` on %s.\n"
		     "# Every key is described in docs/configuration.md; `postgate -c <this file> "
		     "config check` prints them all.\n"
		     "hostname = %s\n"
		     "user = %s\n"
		     "state_dir = state\n"
		     "maildir_root = mail\n"
		     "accounts_db = state/accounts.db\n"
		     "tls_cert = tls/cert.pem\n"
		     "tls_key = tls/key.pem\n"
		     "log_level = info\n"
		     "\n"
		     "[listener mx]\n"
		     "listen = 127.0.0.1:2525\n"
		     "\n"
		     "[listener submission]\n"
		     "listen = 127.0.0.1:5870\n"
		     "\n"
		     "[listener submissions]\n"
		     "listen = 127.0.0.1:4650\n"
		     "\n"
		     "[listener pop3]\n"
		     "listen = 127.0.0.1:1100\n"
		     "\n"
		     "[listener pop3s]\n"
		     "listen = 127.0.0.1:9950\n"
		     "\n"
		     "[listener http]\n"
		     "listen = 127.0.0.1:8080\n",
		     now, hostname, user);
	if (n < 0 || (size_t) n >= out_cap)
		return error_set(err, ERROR_SOFTWARE, "configuration text too long");
	return 0;
}

static int daemon_user_name(char *out, size_t out_cap, struct error *err)
{
	struct passwd *pw;

	if (geteuid() == 0) {
		snprintf(out, out_cap, "%s", INIT_DAEMON_USER);
		return 0;
	}
	if ((pw = getpwuid(geteuid())) == NULL)
		return error_set(err, ERROR_SOFTWARE, "cannot find the name of user id %lu",
				 (unsigned long) geteuid());
	if (!span_copy_cstr(span_from_cstr(pw->pw_name), out, out_cap))
		return error_set(err, ERROR_DATA, "user name too long: %s", pw->pw_name);
	return 0;
}

static void print_summary(FILE *out, const struct init_paths *paths, const char *domain,
			  const char *const *names, bool is_given, const char *user)
{
	char config_path[CONFIG_PATH_MAX + 4], maildir_root[CONFIG_PATH_MAX + 4];
	char cert_path[CONFIG_PATH_MAX + 4], key_path[CONFIG_PATH_MAX + 4],
		db_path[CONFIG_PATH_MAX + 4];
	char cert_what[4 * ADDRESS_DOMAIN_MAX + 64], db_what[ADDRESS_DOMAIN_MAX + 64];
	const char *const rows[][2] = {
		{ config_path,
		  "configuration (listeners on 127.0.0.1 ports 2525, 5870, 4650, 1100, "
		  "9950, 8080)" },
		{ cert_path, cert_what },
		{ key_path, "its private key (mode 0600)" },
		{ db_path, db_what },
		{ maildir_root, "Maildirs" },
	};
	struct cli_table *table;

	snprintf(config_path, sizeof(config_path), "  %s", paths->config);
	snprintf(cert_path, sizeof(cert_path), "  %s", paths->cert);
	snprintf(key_path, sizeof(key_path), "  %s", paths->key);
	snprintf(db_path, sizeof(db_path), "  %s", paths->accounts_db);
	snprintf(maildir_root, sizeof(maildir_root), "  %s/", paths->maildir_root);
	snprintf(cert_what, sizeof(cert_what), "self-signed certificate for %s, %s, %s (%d days)",
		 names[0], names[1], names[2], INIT_CERT_DAYS);
	snprintf(db_what, sizeof(db_what), "accounts store with the domain %s and no users",
		 domain);

	fprintf(out, "Made a postgate instance for %s in %s:\n", domain, paths->dir);
	/* The first row takes the header's place: every row is printed alike. */
	table = cli_table_new(2, rows[0], NULL);
	for (size_t i = 1; table != NULL && i < ARRAY_LEN(rows); i++)
		if (cli_table_add_row(table, rows[i], NULL) < 0) {
			cli_table_free(table);
			table = NULL;
		}
	if (table != NULL) {
		cli_table_print(table, out);
		cli_table_free(table);
	} else {
		for (size_t i = 0; i < ARRAY_LEN(rows); i++)
			fprintf(out, "%s  %s\n", rows[i][0], rows[i][1]);
	}
	if (geteuid() == 0 && !is_given)
		fprintf(out,
			"\npostgated started as root runs as the user %s, which does not exist "
			"yet:\n  useradd --system --no-create-home --shell /usr/sbin/nologin %s\n",
			user, user);
	fprintf(out, "\nNext steps:\n");
	fprintf(out, "  postgate -c %s user add alice@%s\n", paths->config, domain);
	fprintf(out, "  postgated -c %s -f\n", paths->config);
}

static int do_init(struct cli *cli, const struct cli_args *args, struct error *err)
{
	static struct init_paths paths;
	static char config_text[8192];
	const char *domain_arg = cli_args_value(args, "domain");
	const char *hostname_arg = cli_args_value(args, "hostname");
	char domain[ADDRESS_DOMAIN_MAX + 1], hostname[ADDRESS_DOMAIN_MAX + 1];
	char smtp_name[ADDRESS_DOMAIN_MAX + 1], pop3_name[ADDRESS_DOMAIN_MAX + 1];
	char scratch[ADDRESS_DOMAIN_MAX + 16];
	char user[CONFIG_USER_MAX];
	const char *names[3];
	struct init_undo undo = { 0 };
	bool is_given = false;
	int must_make_dir;

	/* Everything that can be checked is checked before the first mkdir. */
	if (cli_domain_normalize(domain_arg ? domain_arg : INIT_DEFAULT_DOMAIN, "domain", domain,
				 err) < 0)
		return -1;
	if (hostname_arg == NULL) {
		snprintf(scratch, sizeof(scratch), "mail.%s", domain);
		hostname_arg = scratch;
	}
	if (cli_domain_normalize(hostname_arg, "host name", hostname, err) < 0)
		return -1;
	snprintf(scratch, sizeof(scratch), "smtp.%s", domain);
	if (cli_domain_normalize(scratch, "SMTP server name", smtp_name, err) < 0)
		return -1;
	snprintf(scratch, sizeof(scratch), "pop.%s", domain);
	if (cli_domain_normalize(scratch, "POP3 server name", pop3_name, err) < 0)
		return -1;
	names[0] = hostname;
	names[1] = smtp_name;
	names[2] = pop3_name;
	if (daemon_user_name(user, sizeof(user), err) < 0)
		return -1;
	if (config_text_make(hostname, user, config_text, sizeof(config_text), err) < 0)
		return -1;
	if (paths_make(args->values[0], &paths, err) < 0)
		return -1;
	if ((must_make_dir = check_target(&paths, err)) < 0)
		return -1;

	if (must_make_dir && make_dir(paths.dir, 0755, &undo, err) < 0)
		goto fail;
	if (make_dir(paths.tls_dir, 0755, &undo, err) < 0)
		goto fail;
	if (tls_cert_make_selfsigned(names, ARRAY_LEN(names), INIT_CERT_DAYS, paths.cert, paths.key,
				     err) < 0)
		goto fail;
	undo_push(&undo, paths.key, false);
	undo_push(&undo, paths.cert, false);
	if (make_dir(paths.state_dir, 0700, &undo, err) < 0 ||
	    make_dir(paths.maildir_root, 0700, &undo, err) < 0)
		goto fail;
	if (make_store(&paths, domain, &undo, err) < 0)
		goto fail;
	if (give_to_daemon_user(&paths, &is_given, err) < 0)
		goto fail;
	/* Last: a directory without postgate.conf is never a half-made instance. */
	if (write_file(paths.config, 0644, config_text, &undo, err) < 0)
		goto fail;

	print_summary(cli->out, &paths, domain, names, is_given, user);
	return 0;
fail:
	undo_run(&undo);
	return -1;
}

static const struct cli_option init_options[] = {
	{ "domain", true },
	{ "hostname", true },
	{ NULL, false },
};

static const struct cli_verb init_verbs[] = {
	{ NULL, "DIR [--domain DOMAIN] [--hostname NAME]",
	  "make a self-contained instance in DIR, a new or empty directory", 1, 1, init_options,
	  CLI_NEEDS_NOTHING, do_init },
};

const struct cli_command cli_init_command = { "init", init_verbs, ARRAY_LEN(init_verbs) };
