/*
 * fsync: the disk's rate of durable small-file commits, the physical limit of
 * one-fsync-per-message durability. One cycle is what a mail server does to
 * accept or deliver a message without trusting the page cache: create a file
 * in DIR/tmp, write SIZE bytes, fsync it, close it, rename it into DIR/new
 * and fsync DIR/new (the directory entry is only durable after that).
 *
 * Each run uses N threads at once, all in the same two directories (as a
 * server's concurrent transactions do), for a fixed duration; the files are
 * removed after each run, outside the timed part.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct options {
	const char *dir;
	uint64_t threads[16];
	size_t thread_runs;
	double duration_s;
	uint64_t size;
};

struct worker {
	pthread_t thread;
	size_t index;
	uint64_t cycles;
	struct bench_latency latency;
	int failed_errno;
	const char *failed_step;
};

static struct options opt;
static char *payload;
static int new_dir_fd = -1;
static double deadline;
static atomic_bool failed;

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char tmp[4096], final[4096];

	while (!atomic_load(&failed)) {
		double t0 = bench_now();
		int fd;
		if (t0 >= deadline)
			break;
		snprintf(tmp, sizeof(tmp), "%s/tmp/f%zu-%llu", opt.dir, w->index,
			 (unsigned long long) w->cycles);
		snprintf(final, sizeof(final), "%s/new/f%zu-%llu", opt.dir, w->index,
			 (unsigned long long) w->cycles);
		w->failed_step = "open";
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
			goto fail;
		w->failed_step = "write";
		if (write(fd, payload, opt.size) != (ssize_t) opt.size) {
			close(fd);
			goto fail;
		}
		w->failed_step = "fsync file";
		if (fsync(fd) != 0) {
			close(fd);
			goto fail;
		}
		close(fd);
		w->failed_step = "rename";
		if (rename(tmp, final) != 0)
			goto fail;
		w->failed_step = "fsync directory";
		if (fsync(new_dir_fd) != 0)
			goto fail;
		w->cycles++;
		bench_latency_add(&w->latency, bench_now() - t0);
	}
	return NULL;
fail:
	w->failed_errno = errno;
	atomic_store(&failed, true);
	return NULL;
}

static void dir_make(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "fsync: mkdir %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void files_remove(size_t threads, const struct worker *workers)
{
	char path[4096];

	for (size_t i = 0; i < threads; i++)
		for (uint64_t n = 0; n <= workers[i].cycles; n++) {
			snprintf(path, sizeof(path), "%s/new/f%zu-%llu", opt.dir, i,
				 (unsigned long long) n);
			unlink(path);
			snprintf(path, sizeof(path), "%s/tmp/f%zu-%llu", opt.dir, i,
				 (unsigned long long) n);
			unlink(path);
		}
}

static int run(uint64_t threads)
{
	struct worker *workers = calloc(threads, sizeof(*workers));
	struct bench_latency all = { 0 };
	uint64_t cycles = 0;
	double start, elapsed;
	int status = 0;

	atomic_store(&failed, false);
	start = bench_now();
	deadline = start + opt.duration_s;
	for (size_t i = 0; i < threads; i++) {
		workers[i].index = i;
		pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
	}
	for (size_t i = 0; i < threads; i++)
		pthread_join(workers[i].thread, NULL);
	elapsed = bench_now() - start;
	for (size_t i = 0; i < threads; i++) {
		cycles += workers[i].cycles;
		bench_latency_merge(&all, &workers[i].latency);
		if (workers[i].failed_step != NULL && workers[i].failed_errno != 0) {
			fprintf(stderr, "fsync: %s: %s\n", workers[i].failed_step,
				strerror(workers[i].failed_errno));
			status = 1;
		}
	}
	files_remove(threads, workers);
	printf("threads=%llu cycles=%llu seconds=%.2f cycles_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f\n",
	       (unsigned long long) threads, (unsigned long long) cycles, elapsed,
	       (double) cycles / elapsed, bench_latency_ms(&all, 0.5), bench_latency_ms(&all, 0.99),
	       bench_latency_ms(&all, 1.0));
	fflush(stdout);
	for (size_t i = 0; i < threads; i++)
		bench_latency_clear(&workers[i].latency);
	bench_latency_clear(&all);
	free(workers);
	return status;
}

static void usage(void)
{
	puts("usage: fsync [options] DIR\n"
	     "Cycles of create + write + fsync + close + rename + fsync(directory) in DIR/tmp and\n"
	     "DIR/new (made if missing; the files are removed afterwards). One line per run.\n"
	     "  -T, --threads LIST      thread counts, comma-separated (default 1,2,4)\n"
	     "  -d, --duration SECONDS  per run (default 5)\n"
	     "  -s, --size BYTES        bytes written per file (default 4096)");
}

static void threads_parse(char *list)
{
	char *p = list;

	opt.thread_runs = 0;
	while (*p != '\0') {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma = '\0';
		if (opt.thread_runs == 16 || !bench_parse_u64(p, &opt.threads[opt.thread_runs]) ||
		    opt.threads[opt.thread_runs] == 0 || opt.threads[opt.thread_runs] > 1024)
			bench_usage_fail("fsync", "bad thread list", list);
		opt.thread_runs++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
}

int main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "threads", required_argument, NULL, 'T' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char path[4096];
	int ch, status = 0;

	opt.threads[0] = 1;
	opt.threads[1] = 2;
	opt.threads[2] = 4;
	opt.thread_runs = 3;
	opt.duration_s = 5;
	opt.size = 4096;
	while ((ch = getopt_long(argc, argv, "T:d:s:h", long_options, NULL)) != -1) {
		switch (ch) {
		case 'T':
			threads_parse(optarg);
			break;
		case 'd':
			if (!bench_parse_seconds(optarg, &opt.duration_s) || opt.duration_s <= 0)
				bench_usage_fail("fsync", "bad duration", optarg);
			break;
		case 's':
			if (!bench_parse_u64(optarg, &opt.size) || opt.size > (1u << 26))
				bench_usage_fail("fsync", "bad size", optarg);
			break;
		case 'h':
			usage();
			return 0;
		default:
			bench_usage_fail("fsync", "bad option", NULL);
		}
	}
	if (argc - optind != 1)
		bench_usage_fail("fsync", "give one directory", NULL);
	opt.dir = argv[optind];
	dir_make(opt.dir);
	snprintf(path, sizeof(path), "%s/tmp", opt.dir);
	dir_make(path);
	snprintf(path, sizeof(path), "%s/new", opt.dir);
	dir_make(path);
	if ((new_dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "fsync: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	payload = malloc(opt.size + 1);
	memset(payload, 'x', opt.size + 1);
	printf("fsync: %s, %llu-byte files, %.1f s per run\n", opt.dir,
	       (unsigned long long) opt.size, opt.duration_s);
	for (size_t i = 0; i < opt.thread_runs && status == 0; i++)
		status = run(opt.threads[i]);
	close(new_dir_fd);
	free(payload);
	return status;
}
