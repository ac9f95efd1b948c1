/*
 * checkpoint.h - the runner's WAL checkpointer.
 *
 * SQLite copies the write-ahead log back into the database file (a
 * checkpoint) inside the COMMIT that makes the log pass 1,000 frames: on
 * the committing connection, with two fdatasyncs and a few hundred page
 * writes, 5-10 ms on a small VM. For the runner that COMMIT is the one
 * before a go, so every such checkpoint stalled a chain's next task
 * (docs/runner.md, "Checkpoints apart from the commits"). The
 * checkpointer takes that work off the runner's writer connection: the
 * writer's commits only note the log's length, and a thread of its own,
 * on a connection of its own, runs the PASSIVE checkpoint (which never
 * blocks a writer or a reader) while the runner goes on.
 *
 * Nothing here knows the runner (no runner.h): it works on any pw_store.
 */
#ifndef PW_CHECKPOINT_H
#define PW_CHECKPOINT_H

#include <stdbool.h>

#include "store.h"

/* The log length (frames) from which a commit asks for a checkpoint:
 * SQLite's own default (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT). */
#define CKPT_FRAMES 1000

typedef struct ckpt ckpt;

/*
 * Starts checkpointing writer's database on a thread: opens a second
 * connection to its file (pw_store_open_existing), then turns off the
 * writer's own automatic checkpoints. The thread blocks every signal.
 * Returns the handle, or NULL with *err malloc'd; the writer then keeps
 * SQLite's automatic checkpoints, so nothing is lost but the speed.
 * writer must stay open until ckpt_stop.
 */
ckpt *ckpt_start(pw_store *writer, char **err);
/*
 * Stops the thread (a checkpoint under way ends first), closes its
 * connection and gives the writer back SQLite's automatic checkpoints.
 * c may be NULL.
 */
void ckpt_stop(ckpt *c);
/*
 * Checkpoints run so far: by the thread, or (by_writer) by the writer's
 * commits because the log reached its bound (see checkpoint.c). Tests.
 */
long ckpt_count(ckpt *c, bool by_writer);
/*
 * The last checkpoint's failure since the previous call, as a malloc'd
 * sentence, or NULL: the caller logs it (the thread logs nothing).
 */
char *ckpt_take_error(ckpt *c);

#endif
