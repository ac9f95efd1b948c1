/*
 * walvfs.h - a VFS that writes a commit's WAL frames in one system call.
 *
 * SQLite writes every frame of a commit to the WAL with two writes (its
 * 24-byte header, then the page): 20-30 pwrite calls for one step of a
 * chain, on the path between a task's end and the next task's go. This
 * VFS, over the default one, gathers the contiguous writes to a WAL file
 * and writes them with one pwrite when the frames are about to become
 * visible: at the database's xShmBarrier, which SQLite calls before it
 * publishes the WAL-index header that makes a commit seen by readers (and
 * by recovery only through a commit frame with valid checksums), or before
 * anything else touches the WAL file (a read, a sync, a truncate, its
 * size, a write elsewhere, closing it). Everything else goes through.
 * docs/runner.md, "Writing a commit".
 *
 * Uses SQLite only, not runner.h (layer 2 of docs/runner.md, "Layers").
 */
#ifndef PW_WALVFS_H
#define PW_WALVFS_H

/* Name of the VFS, for sqlite3_vfs_find and sqlite3_open_v2. */
#define WALVFS_NAME "pw-walvfs"

/*
 * Registers the VFS over the current default and makes it the default, so
 * that every connection the process opens afterwards uses it. Once per
 * process. Returns 0, or -1 when SQLite refused (the default stays).
 */
int walvfs_register(void);

#endif
