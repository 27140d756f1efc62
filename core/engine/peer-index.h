/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Peer indices (DESIGN.md §4): a number 1..max per peer node, local to this node, carried in
 * skb marks, BPF maps and xfrm inbound SA marks, which must all agree on it. So an index is
 * stable: kept in <state_dir>/peer-indices across restarts and reloads, independent of the
 * order in which peers appear, and given to another node only after its peer was released
 * (gone for good: absent after a full resync) and every never-used index is taken.
 *
 * The file is a journal of lines "+ INDEX NODE" (allocated) and "- INDEX NODE" (released),
 * appended with one write(2) each before the index is handed out, and compacted at open by an
 * atomic rename. It is not fsync'ed per line, on purpose: a crash of the process keeps the page
 * cache, and a crash of the machine loses the kernel objects that carry the indices too.
 *
 * Thread-safe. Nothing here logs; errors name the file and line in `error`.
 */
#ifndef MC_PEER_INDEX_H
#define MC_PEER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define MC_PEER_INDEX_FILE "peer-indices"

struct mc_peer_index;

/*
 * Opens <state_dir>/peer-indices (a missing file or directory is created: mode 0600 / 0700).
 * max (1..65535) is the largest index the peer mark mask can carry. -EINVAL with `error` for a
 * malformed file (the agent must not guess indices that kernel objects may carry), -errno of
 * the file system otherwise. *out is the caller's (mc_peer_index_free).
 */
int mc_peer_index_open(const char *state_dir, uint32_t max, struct mc_peer_index **out,
		       char *error, size_t error_size);
void mc_peer_index_free(struct mc_peer_index *pi);

/* The index of node `name`; with `allocate`, a new one is allocated (and journaled) if it has
 * none. Returns the index (> 0), 0 (none, and not allocating), -ENOSPC (all taken), -ENOMEM or
 * -errno of the journal write. */
int mc_peer_index_get(struct mc_peer_index *pi, const char *name, int allocate);

/* Releases the index of every node not among names[0..n). Returns the number released or
 * -errno (the journal write; the indices stay allocated then). */
int mc_peer_index_retain(struct mc_peer_index *pi, const char *const *names, size_t n);

/* Removes the file (meshcryptd --cleanup: the objects carrying the indices are gone). */
int mc_peer_index_remove_file(const char *state_dir);

#endif
