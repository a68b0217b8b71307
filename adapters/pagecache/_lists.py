"""Numba building blocks: intrusive doubly linked lists and an indexed binary heap.

Every list lives in shared `prev`/`nxt` arrays indexed by object id, with one
sentinel node per list at index n_obj + k; an object is in at most one list at
a time. The front (after the sentinel) is the newest entry, `prev[sentinel]`
the oldest. The heap orders objects by a lexicographic (k1, k2) key, smallest
on top, and keeps each object's position so keys can change in O(log n).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def l_init(prev, nxt, s):
    prev[s] = s
    nxt[s] = s


@njit(cache=True, inline="always")
def sieve_victim(prev, nxt, visited, hand, s):
    """SIEVE's eviction: from the hand (the oldest entry when it is at the sentinel) towards the front,
    clearing visited bits, to the first unvisited entry; returns (victim, the hand's next position)."""
    o = hand if hand != s else prev[s]
    while visited[o]:
        visited[o] = False
        o = prev[o]
        if o == s:
            o = prev[s]
    return o, prev[o]


@njit(cache=True, inline="always")
def l_push_front(prev, nxt, s, x):
    first = nxt[s]
    nxt[x] = first
    prev[x] = s
    prev[first] = x
    nxt[s] = x


@njit(cache=True, inline="always")
def l_remove(prev, nxt, x):
    p = prev[x]
    n = nxt[x]
    nxt[p] = n
    prev[n] = p


@njit(cache=True, inline="always")
def l_back(prev, s):
    """Oldest entry of list s (== s when empty)."""
    return prev[s]


# --------------------------------------------------------------------------- indexed heap


@njit(cache=True, inline="always")
def _less(k1, k2, a, b):
    return k1[a] < k1[b] or (k1[a] == k1[b] and k2[a] < k2[b])


@njit(cache=True)
def h_sift_up(heap, pos, k1, k2, i):
    x = heap[i]
    while i > 0:
        parent = (i - 1) >> 1
        y = heap[parent]
        if k1[x] < k1[y] or (k1[x] == k1[y] and k2[x] < k2[y]):
            heap[i] = y
            pos[y] = i
            i = parent
        else:
            break
    heap[i] = x
    pos[x] = i


@njit(cache=True)
def h_sift_down(heap, pos, k1, k2, i, size):
    x = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        c = heap[child]
        if child + 1 < size:
            d = heap[child + 1]
            if k1[d] < k1[c] or (k1[d] == k1[c] and k2[d] < k2[c]):
                child += 1
                c = d
        if k1[c] < k1[x] or (k1[c] == k1[x] and k2[c] < k2[x]):
            heap[i] = c
            pos[c] = i
            i = child
        else:
            break
    heap[i] = x
    pos[x] = i


@njit(cache=True)
def h_push(heap, pos, k1, k2, size, x):
    heap[size] = x
    pos[x] = size
    h_sift_up(heap, pos, k1, k2, size)
    return size + 1


@njit(cache=True)
def h_update(heap, pos, k1, k2, size, x):
    """Restore heap order after x's key changed (either direction)."""
    i = pos[x]
    h_sift_up(heap, pos, k1, k2, i)
    h_sift_down(heap, pos, k1, k2, pos[x], size)


@njit(cache=True)
def h_remove(heap, pos, k1, k2, size, x):
    """Remove x; returns the new size."""
    i = pos[x]
    size -= 1
    pos[x] = -1
    if i != size:
        last = heap[size]
        heap[i] = last
        pos[last] = i
        h_sift_up(heap, pos, k1, k2, i)
        h_sift_down(heap, pos, k1, k2, pos[last], size)
    return size


def new_heap(n_obj: int, cap: int):
    return np.empty(cap + 1, np.int32), np.full(n_obj, -1, np.int32)
