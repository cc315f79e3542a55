#include "kiln_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// The atomics that spinning threads read sit on cache lines of their own, and the pool is
// allocated cache-line aligned, so no unrelated write (another heap object's reference
// count, say) shares a line with them and ping-pongs it between the cores.
struct kiln_pool {
    _Alignas(64) atomic_uint generation;  // bumped for every job
    _Alignas(64) atomic_int next_task;
    _Alignas(64) atomic_int remaining;    // workers still inside the current job
    _Alignas(64) atomic_int stop;
    _Alignas(64) int threads;             // including the caller
    int tasks;
    void (*fn)(void *, int);
    void *ctx;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static void run_tasks(kiln_pool *p) {
    for (;;) {
        const int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_acq_rel);
        if (t >= p->tasks) break;
        p->fn(p->ctx, t);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker_main(void *arg) {
    kiln_pool *p = arg;
    // Jobs are numbered from 1; a job issued before this thread first runs must still be seen.
    unsigned seen = 0;
    for (;;) {
        // Spin for a while (new work usually follows within microseconds), then sleep.
        const double deadline = now_seconds() + 0.002;
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen && !atomic_load(&p->stop)) {
            if (++spins % 256 == 0 && now_seconds() > deadline) {
                pthread_mutex_lock(&p->lock);
                while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->lock);
                pthread_mutex_unlock(&p->lock);
                break;
            }
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        run_tasks(p);
        atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel);
    }
}

kiln_pool *kiln_pool_create(int threads) {
    const size_t size = (sizeof(kiln_pool) + 63) / 64 * 64;
    kiln_pool *p = aligned_alloc(64, size);
    if (!p) return NULL;
    memset(p, 0, size);
    p->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->next_task, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->stop, 0);
    p->workers = calloc(p->threads, sizeof(pthread_t));
    for (int i = 1; i < p->threads; i++) pthread_create(&p->workers[i], NULL, worker_main, p);
    return p;
}

void kiln_pool_destroy(kiln_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->threads; i++) pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void kiln_pool_run(kiln_pool *p, int tasks, void (*fn)(void *, int), void *ctx) {
    if (tasks <= 0) return;
    if (p->threads == 1 || tasks == 1) {
        for (int t = 0; t < tasks; t++) fn(ctx, t);
        return;
    }
    p->tasks = tasks;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->remaining, p->threads - 1);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_tasks(p);
    while (atomic_load_explicit(&p->remaining, memory_order_acquire) > 0) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
}
