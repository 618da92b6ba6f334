/*
 * hashmem: huge pages for argon2id's memory (auth/hashmem.h). Owns the
 * process's mmap(). It must pass every other mapping to the kernel exactly
 * as asked, never fail where the C library's mmap would not, and never
 * touch memory it did not map.
 */
#include "auth/hashmem.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
	__has_feature(thread_sanitizer)
#define HASHMEM_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HASHMEM_SANITIZED 1
#endif

/* The raw system call below takes mmap's six arguments as they are only
 * where the kernel's mmap is the 64-bit one (not 32-bit x86's old_mmap). */
#if !defined(__x86_64__) && !defined(__aarch64__)
#define HASHMEM_SANITIZED 1
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static _Thread_local bool is_hashing;
static atomic_uint_fast64_t advised_count;

void auth_hashmem_begin(void)
{
	is_hashing = true;
}

void auth_hashmem_end(void)
{
	is_hashing = false;
}

uint64_t auth_hashmem_advised_count(void)
{
	return atomic_load(&advised_count);
}

#ifdef HASHMEM_SANITIZED

bool auth_hashmem_is_active(void)
{
	return false;
}

#else

bool auth_hashmem_is_active(void)
{
	return true;
}

static void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	long p = syscall(SYS_mmap, addr, len, prot, flags, fd, offset);

	return p == -1 ? MAP_FAILED : (void *) p;
}

static void *hashmem_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	void *p;
	int saved_errno;

	if (!is_hashing || addr != NULL || fd != -1 || len < AUTH_HASHMEM_MIN_BYTES ||
	    (flags & (MAP_ANONYMOUS | MAP_PRIVATE)) != (MAP_ANONYMOUS | MAP_PRIVATE) ||
	    (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_HUGETLB | MAP_GROWSDOWN)) != 0)
		return raw_mmap(addr, len, prot, flags, fd, offset);
	/* Populating first would fill the range with 4 KiB pages: advise, then populate. */
	p = raw_mmap(NULL, len, prot, flags & ~MAP_POPULATE, -1, offset);
	if (p == MAP_FAILED)
		return p;
	saved_errno = errno;
	if (madvise(p, len, MADV_HUGEPAGE) == 0)
		atomic_fetch_add(&advised_count, 1);
	/* MAP_POPULATE is a hint too: where this fails, pages come on first touch. */
	if ((flags & MAP_POPULATE) != 0)
		(void) madvise(p, len, MADV_POPULATE_WRITE);
	errno = saved_errno;
	return p;
}

/*
 * The symbols themselves. With _FILE_OFFSET_BITS=64 the C library's header
 * renames mmap to mmap64; libraries built without it (libsodium) ask for
 * mmap. Both names lead here; on 64-bit Linux they are one system call.
 */
void *postgate_mmap(void *addr, size_t len, int prot, int flags, int fd,
		    off_t offset) __asm__("mmap");
void *postgate_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		      off_t offset) __asm__("mmap64");

void *postgate_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	return hashmem_mmap(addr, len, prot, flags, fd, offset);
}

void *postgate_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	return hashmem_mmap(addr, len, prot, flags, fd, offset);
}

#endif
