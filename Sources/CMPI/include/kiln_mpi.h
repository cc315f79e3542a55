// Open MPI, loaded at run time: Kiln links no MPI library, so a process not launched by
// mpirun needs none installed. Under mpirun (OMPI_COMM_WORLD_SIZE in the environment) the
// first call loads libmpi.so.40 with dlopen and initialises MPI; every collective is over
// MPI_COMM_WORLD. Functions return 0 on success; a failing MPI call aborts the job (Open
// MPI's default error handler), so a lost rank ends it rather than hanging it.
#ifndef KILN_MPI_H
#define KILN_MPI_H

// 1: MPI initialised (launched by mpirun); 0: not launched by mpirun (or KILN_MPI=0); −1: it
// was, but MPI could not be loaded or initialised (the reason in `error`).
int kiln_mpi_init(char *error, int error_size);
int kiln_mpi_rank(void);
int kiln_mpi_size(void);
// In-place sums over all ranks (counts of any size: split into int-sized calls).
int kiln_mpi_allreduce_sum_float(float *values, long count);
int kiln_mpi_allreduce_sum_double(double *values, long count);
// The same started without waiting (one request per call; count below 2^31).
int kiln_mpi_iallreduce_sum_float(float *values, long count, void **request);
int kiln_mpi_wait(void **request);
// Lets a started reduction progress (Open MPI moves nonblocking collectives on during MPI
// calls); 1 when it has finished (the request is then freed), 0 when not yet.
int kiln_mpi_test(void **request);
// `count` bytes from every rank, concatenated in rank order into `out` on rank 0 (counts[r]
// bytes from rank r; `out` holds their sum). Other ranks pass out = counts = NULL.
int kiln_mpi_gather_bytes(const void *bytes, int count, void *out, const int *counts);
// Every rank's `value` into values[rank] on every rank.
int kiln_mpi_allgather_long(long value, long *values);
// Ends every rank of the job with `code`.
void kiln_mpi_abort(int code);
int kiln_mpi_finalize(void);

#endif
