/*
 * walvfs.c - a VFS that writes a commit's WAL frames in one system call
 * (walvfs.h says why and when).
 *
 * Every file of the base VFS is wrapped; only WAL files gather writes.
 * A WAL file knows its main database's file (sqlite3_database_file_object)
 * and the main file knows its WAL, so that the main file's xShmBarrier can
 * write what is gathered. Errors come back from the write of the commit
 * frame's page: SQLite marks a commit frame (a non-zero database size in
 * its 24-byte header), and the write of the page after that header sends
 * everything gathered. The barrier then finds nothing to write, except in
 * a case SQLite does not take here (frames after the commit frame); if
 * writing fails there, the process aborts before the WAL-index header
 * names frames that are not in the file: a crash the runner survives
 * (docs/runner.md, "Crash safety"), never a header over missing frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "walvfs.h"

/* Gathered bytes beyond which a WAL file writes what it has. */
#define GATHER_MAX (1 << 20)
/*
 * The most one xWrite of the base VFS takes: the unix VFS keeps the low 17
 * bits of a length (SQLite never writes more than a frame at once).
 */
#define WRITE_MAX (64 * 1024)
/* The size of a WAL frame header; bytes 4-7 are the commit's page count. */
#define FRAME_HEADER 24

typedef struct vfile {
	sqlite3_file base;    /* our methods */
	sqlite3_file *real;   /* the base VFS's file (memory right after us) */
	struct vfile *wal;    /* main database: its WAL file while open */
	struct vfile *db;     /* WAL: its main database's file */
	unsigned char *buf;   /* WAL: gathered writes, from offset at */
	size_t len, cap;
	sqlite3_int64 at;
	int commit_next;      /* WAL: the next write is a commit frame's page */
} vfile;

#define REAL_OFFSET ((sizeof(vfile) + 7) & ~(size_t)7)

static const sqlite3_io_methods wal_methods, plain_methods;

static sqlite3_vfs *base_vfs(sqlite3_vfs *vfs)
{
	return vfs->pAppData;
}

/* --- gathering ------------------------------------------------------------- */

/* Writes what f gathered. SQLITE_OK or the base VFS's error. */
static int send_gathered(vfile *f)
{
	int rc = SQLITE_OK;
	for (size_t done = 0, n; rc == SQLITE_OK && done < f->len; done += n) {
		n = f->len - done < WRITE_MAX ? f->len - done : WRITE_MAX;
		rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
					       f->at + (sqlite3_int64)done);
	}
	f->len = 0;
	return rc;
}

/* Appends n bytes for offset off (contiguous with what is there). */
static int gather(vfile *f, const void *p, int n, sqlite3_int64 off)
{
	if (f->len + (size_t)n > f->cap) {
		size_t cap = f->cap ? f->cap : 64 * 1024;
		while (cap < f->len + (size_t)n)
			cap *= 2;
		unsigned char *grown = realloc(f->buf, cap);
		if (!grown)
			return SQLITE_NOMEM;
		f->buf = grown;
		f->cap = cap;
	}
	if (f->len == 0)
		f->at = off;
	memcpy(f->buf + f->len, p, (size_t)n);
	f->len += (size_t)n;
	return SQLITE_OK;
}

static int wal_write(sqlite3_file *file, const void *p, int n, sqlite3_int64 off)
{
	vfile *f = (vfile *)file;
	int commit_page = f->commit_next, rc = SQLITE_OK;
	const unsigned char *b = p;
	f->commit_next = n == FRAME_HEADER && (b[4] | b[5] | b[6] | b[7]) != 0;
	if (f->len && (off != f->at + (sqlite3_int64)f->len || f->len + (size_t)n > GATHER_MAX))
		rc = send_gathered(f);
	if (rc == SQLITE_OK && n > WRITE_MAX)
		return f->real->pMethods->xWrite(f->real, p, n, off);
	if (rc == SQLITE_OK)
		rc = gather(f, p, n, off);
	if (rc == SQLITE_OK && commit_page)
		rc = send_gathered(f);
	return rc;
}

/* --- WAL file methods: write what is gathered, then go through ----------------- */

static int wal_close(sqlite3_file *file)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	if (f->db && f->db->wal == f)
		f->db->wal = NULL;
	free(f->buf);
	int closed = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
	return rc != SQLITE_OK ? rc : closed;
}

static int wal_read(sqlite3_file *file, void *p, int n, sqlite3_int64 off)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, n, off);
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
	vfile *f = (vfile *)file;
	int rc = send_gathered(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

/* --- methods of every file: straight through ---------------------------------- */

#define REAL(file) (((vfile *)(file))->real)

static int plain_close(sqlite3_file *file)
{
	vfile *f = (vfile *)file;
	if (f->wal)
		f->wal->db = NULL;
	return f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
}

static int plain_read(sqlite3_file *file, void *p, int n, sqlite3_int64 off)
{
	return REAL(file)->pMethods->xRead(REAL(file), p, n, off);
}

static int plain_write(sqlite3_file *file, const void *p, int n, sqlite3_int64 off)
{
	return REAL(file)->pMethods->xWrite(REAL(file), p, n, off);
}

static int plain_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	return REAL(file)->pMethods->xTruncate(REAL(file), size);
}

static int plain_sync(sqlite3_file *file, int flags)
{
	return REAL(file)->pMethods->xSync(REAL(file), flags);
}

static int plain_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	return REAL(file)->pMethods->xFileSize(REAL(file), size);
}

static int plain_file_control(sqlite3_file *file, int op, void *arg)
{
	return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int any_lock(sqlite3_file *file, int lock)
{
	return REAL(file)->pMethods->xLock(REAL(file), lock);
}

static int any_unlock(sqlite3_file *file, int lock)
{
	return REAL(file)->pMethods->xUnlock(REAL(file), lock);
}

static int any_check_reserved(sqlite3_file *file, int *out)
{
	return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int any_sector_size(sqlite3_file *file)
{
	return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int any_device_characteristics(sqlite3_file *file)
{
	return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

static int any_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **p)
{
	return REAL(file)->pMethods->xShmMap(REAL(file), page, size, extend, p);
}

static int any_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}

/*
 * SQLite calls the barrier before it publishes a new WAL-index header:
 * the WAL's frames must be in the file by then (see the top comment).
 */
static void any_shm_barrier(sqlite3_file *file)
{
	vfile *f = (vfile *)file;
	if (f->wal && send_gathered(f->wal) != SQLITE_OK) {
		fprintf(stderr, "pipewright-runner: walvfs: writing the WAL failed before a commit"
				" was published; stopping here (a restart recovers)\n");
		abort();
	}
	f->real->pMethods->xShmBarrier(f->real);
}

static int any_shm_unmap(sqlite3_file *file, int delete_flag)
{
	return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}

/* Memory-mapped reads, when the base file has them (else SQLite reads). */
static int any_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **pp)
{
	if (REAL(file)->pMethods->iVersion < 3) {
		*pp = NULL;
		return SQLITE_OK;
	}
	return REAL(file)->pMethods->xFetch(REAL(file), off, n, pp);
}

static int any_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	if (REAL(file)->pMethods->iVersion < 3)
		return SQLITE_OK;
	return REAL(file)->pMethods->xUnfetch(REAL(file), off, p);
}

static const sqlite3_io_methods plain_methods = {
	3, plain_close, plain_read, plain_write, plain_truncate, plain_sync, plain_file_size,
	any_lock, any_unlock, any_check_reserved, plain_file_control, any_sector_size,
	any_device_characteristics, any_shm_map, any_shm_lock, any_shm_barrier, any_shm_unmap,
	any_fetch, any_unfetch,
};

static const sqlite3_io_methods wal_methods = {
	3, wal_close, wal_read, wal_write, wal_truncate, wal_sync, wal_file_size,
	any_lock, any_unlock, any_check_reserved, wal_file_control, any_sector_size,
	any_device_characteristics, any_shm_map, any_shm_lock, any_shm_barrier, any_shm_unmap,
	any_fetch, any_unfetch,
};

/* --- the VFS ------------------------------------------------------------------- */

/*
 * Opens name with the base VFS into the memory after our vfile; a WAL file
 * is tied to its main database's file when that one is ours.
 */
static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
		    int *out_flags)
{
	vfile *f = (vfile *)file;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
	int rc = base_vfs(vfs)->xOpen(base_vfs(vfs), name, f->real, flags, out_flags);
	if (rc != SQLITE_OK)
		return rc; /* pMethods stays NULL: SQLite will not close it */
	if (!(flags & SQLITE_OPEN_WAL) || !name) {
		f->base.pMethods = &plain_methods;
		return SQLITE_OK;
	}
	f->base.pMethods = &wal_methods;
	sqlite3_file *db = sqlite3_database_file_object(name);
	if (db && db->pMethods == &plain_methods) {
		f->db = (vfile *)db;
		f->db->wal = f;
	}
	return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return base_vfs(vfs)->xDelete(base_vfs(vfs), name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return base_vfs(vfs)->xAccess(base_vfs(vfs), name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return base_vfs(vfs)->xFullPathname(base_vfs(vfs), name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *name)
{
	return base_vfs(vfs)->xDlOpen(base_vfs(vfs), name);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	base_vfs(vfs)->xDlError(base_vfs(vfs), n, msg);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
	return base_vfs(vfs)->xDlSym(base_vfs(vfs), lib, sym);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *lib)
{
	base_vfs(vfs)->xDlClose(base_vfs(vfs), lib);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return base_vfs(vfs)->xRandomness(base_vfs(vfs), n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us)
{
	return base_vfs(vfs)->xSleep(base_vfs(vfs), us);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out)
{
	return base_vfs(vfs)->xCurrentTime(base_vfs(vfs), out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return base_vfs(vfs)->xGetLastError(base_vfs(vfs), n, out);
}

static int vfs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return base_vfs(vfs)->xCurrentTimeInt64(base_vfs(vfs), out);
}

static sqlite3_vfs walvfs = {
	.iVersion = 2,
	.zName = WALVFS_NAME,
	.xOpen = vfs_open,
	.xDelete = vfs_delete,
	.xAccess = vfs_access,
	.xFullPathname = vfs_full_pathname,
	.xDlOpen = vfs_dl_open,
	.xDlError = vfs_dl_error,
	.xDlSym = vfs_dl_sym,
	.xDlClose = vfs_dl_close,
	.xRandomness = vfs_randomness,
	.xSleep = vfs_sleep,
	.xCurrentTime = vfs_current_time,
	.xGetLastError = vfs_last_error,
	.xCurrentTimeInt64 = vfs_current_time64,
};

int walvfs_register(void)
{
	sqlite3_vfs *base = sqlite3_vfs_find(NULL);
	if (!base || base == &walvfs || base->iVersion < 2 || !base->xCurrentTimeInt64)
		return -1;
	walvfs.szOsFile = (int)(REAL_OFFSET + (size_t)base->szOsFile);
	walvfs.mxPathname = base->mxPathname;
	walvfs.pAppData = base;
	return sqlite3_vfs_register(&walvfs, 1) == SQLITE_OK ? 0 : -1;
}
