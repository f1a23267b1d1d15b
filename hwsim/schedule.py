"""When each command runs: the decoupled controller and its semaphores, cycle-exact.

The controller accepts one command word per cycle into the queue of the command's unit (depth
``config.queue_depth``; a full queue stalls acceptance). Each unit takes the head of its queue
when it is idle and every semaphore in the command's ``wait`` mask is positive; taking it
decrements those semaphores. The unit runs for ``unit_cycles`` cycles (start to done,
inclusive) and on its done cycle increments the ``signal`` semaphores, which waiting units see
one cycle later. SYNC and SETREG are executed by the controller itself: it stops accepting,
waits until every queue is empty and every unit idle (and its own ``wait`` semaphores are
positive), retires the command, and accepts again on the next cycle.

In cycles, for command ``i`` of unit ``u``::

    accept[i] >= accept[i-1] + 1, and >= start[q] + 1 where q is the command queue_depth
                 places earlier in u's queue (its slot frees when q starts)
    start[i]  =  max(accept[i] + 1, end[previous command of u] + 1, visible time of each
                 semaphore token it consumes)
    end[i]    =  start[i] + unit_cycles[i] - 1

Semaphores are point-to-point token queues: each has at most one producer unit and one consumer
unit, and the token a command consumes must have been produced by a command earlier in program
order (or it would deadlock or depend on timing); :func:`schedule` rejects programs that break
these rules, naming the command. A semaphore holds at most :data:`hwsim.isa.SEMAPHORE_MAX`
tokens (the RTL's 8-bit counters): a program that would keep more outstanding is rejected too.
The RTL controller (``rtl.controller``) implements exactly this.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .isa import SEMAPHORE_MAX

__all__ = ["ScheduleError", "check_capacity", "schedule", "schedule_per_cycle"]

N_SEMS = 8
_ERR_NONE, _ERR_NO_TOKEN, _ERR_TWO_PRODUCERS, _ERR_TWO_CONSUMERS = 0, 1, 2, 3


class ScheduleError(ValueError):
    """A program whose semaphores cannot be honoured; names the command and semaphore."""

    def __init__(self, index: int, field: str, why: str):
        self.index, self.field = index, field
        super().__init__(f"command {index} field {field!r}: {why}")


# interpreted: about 10 us a command on a loaded 2-core machine (hwsim._jit)
@njit(cache=True, cost=lambda unit, *_: 1e-5 * unit.shape[0])
def _schedule(unit, duration, wait, signal, control, queue_depth, n_units, sem_base):
    n = unit.shape[0]
    accept = np.zeros(n, np.int64)
    token = np.full(n, -1, np.int64)  # when the last token a command waited for became visible
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    unit_free = np.zeros(n_units, np.int64)  # first cycle a unit may start
    # per unit: start cycles of its last queue_depth commands, to find when a queue slot frees
    unit_count = np.zeros(n_units, np.int64)
    unit_starts = np.zeros((n_units, max(queue_depth, 1)), np.int64)
    # semaphore s's k-th token becomes visible on prod_times[sem_base[s] + k] (memory in the
    # tokens the program signals, not in commands x semaphores)
    prod_times = np.zeros(max(sem_base[N_SEMS], 1), np.int64)
    n_prod = np.zeros(N_SEMS, np.int64)
    n_cons = np.zeros(N_SEMS, np.int64)
    producer = np.full(N_SEMS, -1, np.int64)
    consumer = np.full(N_SEMS, -1, np.int64)
    next_accept = 0
    last_end = -1
    for i in range(n):
        u = unit[i]
        a = next_accept
        if not control[i]:
            c = unit_count[u]
            if c >= queue_depth:
                a = max(a, unit_starts[u, c % queue_depth] + 1)
        accept[i] = a
        ready = a + 1
        for s in range(N_SEMS):
            if (wait[i] >> s) & 1:
                if consumer[s] == -1:
                    consumer[s] = u
                elif consumer[s] != u:
                    return accept, token, start, end, _ERR_TWO_CONSUMERS, i, s
                k = n_cons[s]
                if k >= n_prod[s]:
                    return accept, token, start, end, _ERR_NO_TOKEN, i, s
                ready = max(ready, prod_times[sem_base[s] + k])
                token[i] = max(token[i], prod_times[sem_base[s] + k])
                n_cons[s] = k + 1
        if control[i]:
            t = max(ready, last_end + 1)
            start[i] = t
            end[i] = t
            next_accept = t + 1
        else:
            t = max(ready, unit_free[u])
            start[i] = t
            end[i] = t + duration[i] - 1
            unit_free[u] = end[i] + 1
            unit_starts[u, unit_count[u] % queue_depth] = t
            unit_count[u] += 1
            next_accept = a + 1
        last_end = max(last_end, end[i])
        for s in range(N_SEMS):
            if (signal[i] >> s) & 1:
                if producer[s] == -1:
                    producer[s] = u
                elif producer[s] != u:
                    return accept, token, start, end, _ERR_TWO_PRODUCERS, i, s
                prod_times[sem_base[s] + n_prod[s]] = end[i] + 1
                n_prod[s] += 1
    return accept, token, start, end, _ERR_NONE, -1, -1


def schedule(unit: np.ndarray, duration: np.ndarray, wait: np.ndarray, signal: np.ndarray,
             control: np.ndarray, queue_depth: int, n_units: int = 8):
    """Accept, token-ready, start and end cycle of every command (cycle 0: the first accept).

    ``token[i]`` is the cycle the last semaphore token command ``i`` consumed became visible
    (-1 if it waits on none); the engine uses it to attribute stalls.

    Parameters
    ----------
    unit, duration, wait, signal : int arrays
        Per command: executing unit, ``unit_cycles``, semaphore masks.
    control : bool array
        True for commands the controller executes itself (SYNC, SETREG).
    queue_depth : int

    Raises
    ------
    ScheduleError
        A token consumed before any earlier command produced it, or a semaphore shared by two
        producer or two consumer units.
    """
    signal = np.asarray(signal, np.int64)
    # where each semaphore's tokens start in the kernel's one array of token times
    made = [int(np.count_nonzero((signal >> s) & 1)) for s in range(N_SEMS)]
    sem_base = np.concatenate(([0], np.cumsum(made))).astype(np.int64)
    acc, tok, st, en, err, idx, sem = _schedule(
        np.asarray(unit, np.int64), np.asarray(duration, np.int64),
        np.asarray(wait, np.int64), signal,
        np.asarray(control, np.bool_), int(queue_depth), int(n_units), sem_base)
    if err == _ERR_NO_TOKEN:
        raise ScheduleError(idx, "wait", f"semaphore {sem} has no token from an earlier command: "
                            "the program would deadlock")
    if err == _ERR_TWO_CONSUMERS:
        raise ScheduleError(idx, "wait", f"semaphore {sem} is already waited on by another unit "
                            "(semaphores are point-to-point)")
    if err == _ERR_TWO_PRODUCERS:
        raise ScheduleError(idx, "signal", f"semaphore {sem} is already signalled by another unit "
                            "(semaphores are point-to-point)")
    check_capacity(wait, signal, st, en)
    return acc, tok, st, en


def check_capacity(wait, signal, start, end) -> None:
    """Raise :class:`ScheduleError` if a semaphore would hold more than
    :data:`~hwsim.isa.SEMAPHORE_MAX` tokens: a token is counted from the cycle after its
    producer's done cycle until its consumer's start cycle (the RTL counter's increment and
    decrement), both applied together when they fall on one cycle."""
    wait, signal = np.asarray(wait, np.int64), np.asarray(signal, np.int64)
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    for s in range(N_SEMS):
        made = np.flatnonzero((signal >> s) & 1)
        if len(made) <= SEMAPHORE_MAX:
            continue
        visible = end[made] + 1
        order = np.argsort(visible, kind="stable")
        taken = np.sort(start[np.flatnonzero((wait >> s) & 1)] + 1)
        held = np.arange(1, len(made) + 1) - np.searchsorted(taken, visible[order], "right")
        over = np.flatnonzero(held > SEMAPHORE_MAX)
        if len(over):
            i = int(made[order[over[0]]])
            raise ScheduleError(i, "signal", f"semaphore {s} would hold {SEMAPHORE_MAX + 1} "
                                f"tokens on cycle {int(visible[order[over[0]]])}: the "
                                f"controller's counters hold {SEMAPHORE_MAX} (8 bits)")


@njit(cache=True)
def _schedule_per_cycle(unit, duration, wait, signal, control, queue_depth, n_units,
                        max_cycles):
    """Step the controller and units one clock at a time, as the RTL does."""
    n = unit.shape[0]
    accept = np.full(n, -1, np.int64)
    start = np.full(n, -1, np.int64)
    end = np.full(n, -1, np.int64)
    sems = np.zeros(N_SEMS, np.int64)
    queue = np.zeros((n_units, n), np.int64)  # command indices, FIFO per unit
    q_head = np.zeros(n_units, np.int64)
    q_tail = np.zeros(n_units, np.int64)
    q_visible = np.zeros((n_units, n), np.int64)  # cycle from which an entry can be read
    running = np.full(n_units, -1, np.int64)
    nxt = 0
    fence = -1
    done = 0
    t = 0
    while done < n and t < max_cycles:
        inc = np.zeros(N_SEMS, np.int64)
        dec = np.zeros(N_SEMS, np.int64)
        # units issue from their queue heads
        for u in range(n_units):
            if running[u] >= 0 and end[running[u]] < t:
                running[u] = -1
            if running[u] >= 0 or q_head[u] == q_tail[u]:
                continue
            if q_visible[u, q_head[u]] > t:
                continue
            i = queue[u, q_head[u]]
            ok = True
            for s in range(N_SEMS):
                if (wait[i] >> s) & 1 and sems[s] == 0:
                    ok = False
            if ok:
                for s in range(N_SEMS):
                    if (wait[i] >> s) & 1:
                        dec[s] += 1
                start[i] = t
                end[i] = t + duration[i] - 1
                running[u] = i
                q_head[u] += 1
        # the controller accepts or completes a fence
        if fence >= 0:
            idle = True
            for u in range(n_units):
                if q_head[u] != q_tail[u] or (running[u] >= 0 and end[running[u]] >= t):
                    idle = False
            for s in range(N_SEMS):
                if (wait[fence] >> s) & 1 and sems[s] == 0:
                    idle = False
            if idle:
                for s in range(N_SEMS):
                    if (wait[fence] >> s) & 1:
                        dec[s] += 1
                start[fence] = t
                end[fence] = t
                fence = -1
        elif nxt < n:
            i = nxt
            if control[i]:
                accept[i] = t
                fence = i
                nxt += 1
            else:
                u = unit[i]
                # the queue level seen this cycle: entries not popped before this cycle
                level = q_tail[u] - q_head[u]
                for j in range(q_head[u] - 1, -1, -1):
                    if start[queue[u, j]] == t:
                        level += 1
                    else:
                        break
                if level < queue_depth:
                    accept[i] = t
                    queue[u, q_tail[u]] = i
                    q_visible[u, q_tail[u]] = t + 1
                    q_tail[u] += 1
                    nxt += 1
        # done cycles release tokens for the next cycle
        for i in range(n):
            if end[i] == t:
                done += 1
                for s in range(N_SEMS):
                    if (signal[i] >> s) & 1:
                        inc[s] += 1
        for s in range(N_SEMS):
            sems[s] += inc[s] - dec[s]
        t += 1
    return accept, start, end, done == n


def schedule_per_cycle(unit, duration, wait, signal, control, queue_depth: int,
                       n_units: int = 8, max_cycles: int = 10_000_000):
    """The same schedule as :func:`schedule`, found by stepping every clock cycle.

    Functional mode uses it; the closed-form :func:`schedule` is what timing mode uses, and
    tests check that both agree. A program that stops making progress (a deadlock) raises
    :class:`ScheduleError` naming the first command that never completed.
    """
    acc, st, en, ok = _schedule_per_cycle(
        np.asarray(unit, np.int64), np.asarray(duration, np.int64),
        np.asarray(wait, np.int64), np.asarray(signal, np.int64),
        np.asarray(control, np.bool_), int(queue_depth), int(n_units), int(max_cycles))
    if not ok:
        idx = int(np.argmax(en < 0))
        raise ScheduleError(idx, "wait", f"never completed within {max_cycles} cycles: the "
                            "program deadlocks")
    check_capacity(wait, signal, st, en)
    return acc, st, en
