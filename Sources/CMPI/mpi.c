// Open MPI through dlopen (see kiln_mpi.h). The handles MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …
// are, in Open MPI's ABI, the addresses of exported globals (ompi_mpi_comm_world, …), looked
// up like the functions.
#include "kiln_mpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *handle;
static int initialised = 0, world_rank = 0, world_size = 1;
static handle comm_world, type_float, type_double, type_byte, type_long, op_sum;
static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_comm_rank)(handle, int *);
static int (*p_comm_size)(handle, int *);
static int (*p_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*p_iallreduce)(const void *, void *, int, handle, handle, handle, void **);
static int (*p_wait)(void **, void *);
static int (*p_test)(void **, int *, void *);
static int (*p_gatherv)(const void *, int, handle, void *, const int *, const int *, handle, int, handle);
static int (*p_allgather)(const void *, int, handle, void *, int, handle, handle);
static int (*p_abort)(handle, int);
static int (*p_finalize)(void);

#define KILN_MPI_IN_PLACE ((void *)1)
#define KILN_MPI_THREAD_FUNNELED 1

int kiln_mpi_init(char *error, int error_size) {
    if (initialised) return 1;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    const char *off = getenv("KILN_MPI");
    if (!size || (off && strcmp(off, "0") == 0)) return 0;
    void *lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) lib = dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(error, error_size, "launched by mpirun, but Open MPI's library cannot be loaded (%s); install openmpi-bin", dlerror());
        return -1;
    }
#define LOOKUP(var, name)                                                                              \
    do {                                                                                                \
        *(void **)&var = dlsym(lib, name);                                                              \
        if (!var) {                                                                                     \
            snprintf(error, error_size, "launched by mpirun, but %s is missing from Open MPI's library", name); \
            return -1;                                                                                  \
        }                                                                                               \
    } while (0)
    LOOKUP(p_init_thread, "MPI_Init_thread");
    LOOKUP(p_comm_rank, "MPI_Comm_rank");
    LOOKUP(p_comm_size, "MPI_Comm_size");
    LOOKUP(p_allreduce, "MPI_Allreduce");
    LOOKUP(p_iallreduce, "MPI_Iallreduce");
    LOOKUP(p_wait, "MPI_Wait");
    LOOKUP(p_test, "MPI_Test");
    LOOKUP(p_gatherv, "MPI_Gatherv");
    LOOKUP(p_allgather, "MPI_Allgather");
    LOOKUP(p_abort, "MPI_Abort");
    LOOKUP(p_finalize, "MPI_Finalize");
    LOOKUP(comm_world, "ompi_mpi_comm_world");
    LOOKUP(type_float, "ompi_mpi_float");
    LOOKUP(type_double, "ompi_mpi_double");
    LOOKUP(type_byte, "ompi_mpi_byte");
    LOOKUP(type_long, "ompi_mpi_long");
    LOOKUP(op_sum, "ompi_mpi_op_sum");
#undef LOOKUP
    int provided = 0;
    // Only the thread that initialised MPI calls it (the kernels' pool threads never do).
    if (p_init_thread(NULL, NULL, KILN_MPI_THREAD_FUNNELED, &provided) != 0) {
        snprintf(error, error_size, "MPI_Init_thread failed");
        return -1;
    }
    p_comm_rank(comm_world, &world_rank);
    p_comm_size(comm_world, &world_size);
    initialised = 1;
    return 1;
}

int kiln_mpi_rank(void) { return world_rank; }
int kiln_mpi_size(void) { return world_size; }

static int allreduce(void *values, long count, handle type, size_t element) {
    if (!initialised) return 0;
    char *p = values;
    while (count > 0) {
        const int n = count > INT_MAX ? INT_MAX : (int)count;
        const int e = p_allreduce(KILN_MPI_IN_PLACE, p, n, type, op_sum, comm_world);
        if (e) return e;
        p += (size_t)n * element;
        count -= n;
    }
    return 0;
}

int kiln_mpi_allreduce_sum_float(float *values, long count) { return allreduce(values, count, type_float, sizeof(float)); }
int kiln_mpi_allreduce_sum_double(double *values, long count) { return allreduce(values, count, type_double, sizeof(double)); }

int kiln_mpi_iallreduce_sum_float(float *values, long count, void **request) {
    if (!initialised || count > INT_MAX) return -1;
    return p_iallreduce(KILN_MPI_IN_PLACE, values, (int)count, type_float, op_sum, comm_world, request);
}

int kiln_mpi_wait(void **request) { return initialised ? p_wait(request, NULL) : 0; }

int kiln_mpi_test(void **request) {
    if (!initialised) return 1;
    int done = 0;
    p_test(request, &done, NULL);
    return done;
}

int kiln_mpi_gather_bytes(const void *bytes, int count, void *out, const int *counts) {
    if (!initialised) {
        if (out && count > 0) memcpy(out, bytes, (size_t)count);
        return 0;
    }
    int *displacements = NULL;
    if (world_rank == 0) {
        displacements = malloc(sizeof(int) * (size_t)world_size);
        if (!displacements) return -1;
        long at = 0;
        for (int r = 0; r < world_size; r++) {
            if (at > INT_MAX) { free(displacements); return -1; }
            displacements[r] = (int)at;
            at += counts[r];
        }
    }
    const int e = p_gatherv(bytes, count, type_byte, out, counts, displacements, type_byte, 0, comm_world);
    free(displacements);
    return e;
}

int kiln_mpi_allgather_long(long value, long *values) {
    if (!initialised) { values[0] = value; return 0; }
    return p_allgather(&value, 1, type_long, values, 1, type_long, comm_world);
}

void kiln_mpi_abort(int code) {
    if (initialised) p_abort(comm_world, code);
    exit(code);
}

int kiln_mpi_finalize(void) {
    if (!initialised) return 0;
    initialised = 0;
    return p_finalize();
}
