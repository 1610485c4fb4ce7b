#ifndef CMPISHIM_H
#define CMPISHIM_H
/* The few Open MPI calls bootmae-train uses, on MPI_COMM_WORLD, as plain C functions: MPI's
 * handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_MAX) are macros Swift cannot import. Every function
 * returns MPI_SUCCESS (0) or an MPI error code; bm_mpi_error_string words it. Built without
 * Open MPI (no mpi.h), bm_mpi_available() is 0 and every call returns BM_MPI_NOT_BUILT. */

#include <stddef.h>
#include <stdint.h>

#define BM_MPI_NOT_BUILT (-1)

/* 1 when compiled against mpi.h. */
int bm_mpi_available(void);
/* MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread calls MPI); errors return instead
 * of aborting (MPI_ERRORS_RETURN on MPI_COMM_WORLD). */
int bm_mpi_init(int *rank, int *size);
int bm_mpi_finalize(void);
/* Ends every rank of the job with `code` (MPI_Abort). */
void bm_mpi_abort(int code);
void bm_mpi_error_string(int code, char *buffer, int capacity);

int bm_mpi_barrier(void);
/* `bytes` bytes of `buffer` from `root` to every rank (in chunks below 2 GiB). */
int bm_mpi_bcast_bytes(void *buffer, int64_t bytes, int root);
/* recv[r·count ..< (r+1)·count] = rank r's `send` (count floats), on every rank. */
int bm_mpi_allgather_floats(const float *send, int count, float *recv);
/* MPI_Alltoallv of floats (counts and displacements in floats, one per rank). */
int bm_mpi_alltoallv_floats(const float *send, const int *send_counts, const int *send_displs,
                            float *recv, const int *recv_counts, const int *recv_displs);
/* MPI_Allgatherv of floats. */
int bm_mpi_allgatherv_floats(const float *send, int count, float *recv, const int *recv_counts, const int *recv_displs);
/* The largest `value` over the ranks, on every rank (an integer: exact in any order). */
int bm_mpi_allreduce_max_int(int value, int *result);

#endif
