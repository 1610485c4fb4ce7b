#include "CMPIShim.h"

#include <limits.h>
#include <stdio.h>

/* mpi.h comes from pkg-config `ompi-c` (system-library target CMPI). Without Open MPI the
 * package still builds: every call below reports BM_MPI_NOT_BUILT. */
#if __has_include(<mpi.h>)
#include <mpi.h>

int bm_mpi_available(void) { return 1; }

int bm_mpi_init(int *rank, int *size) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int bm_mpi_finalize(void) { return MPI_Finalize(); }

void bm_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void bm_mpi_error_string(int code, char *buffer, int capacity) {
    if (capacity <= 0) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = snprintf(text, sizeof text, "MPI error %d", code);
    snprintf(buffer, (size_t)capacity, "%.*s", length, text);
}

int bm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

int bm_mpi_bcast_bytes(void *buffer, int64_t bytes, int root) {
    char *p = buffer;
    while (bytes > 0) {
        int chunk = bytes > (INT_MAX / 2) ? INT_MAX / 2 : (int)bytes;
        int rc = MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        p += chunk;
        bytes -= chunk;
    }
    return MPI_SUCCESS;
}

int bm_mpi_allgather_floats(const float *send, int count, float *recv) {
    return MPI_Allgather(send, count, MPI_FLOAT, recv, count, MPI_FLOAT, MPI_COMM_WORLD);
}

int bm_mpi_alltoallv_floats(const float *send, const int *send_counts, const int *send_displs,
                            float *recv, const int *recv_counts, const int *recv_displs) {
    return MPI_Alltoallv(send, send_counts, send_displs, MPI_FLOAT, recv, recv_counts, recv_displs, MPI_FLOAT, MPI_COMM_WORLD);
}

int bm_mpi_allgatherv_floats(const float *send, int count, float *recv, const int *recv_counts, const int *recv_displs) {
    return MPI_Allgatherv(send, count, MPI_FLOAT, recv, recv_counts, recv_displs, MPI_FLOAT, MPI_COMM_WORLD);
}

int bm_mpi_allreduce_max_int(int value, int *result) {
    return MPI_Allreduce(&value, result, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}

#else

int bm_mpi_available(void) { return 0; }
int bm_mpi_init(int *rank, int *size) { *rank = 0; *size = 1; return BM_MPI_NOT_BUILT; }
int bm_mpi_finalize(void) { return BM_MPI_NOT_BUILT; }
void bm_mpi_abort(int code) { (void)code; }
void bm_mpi_error_string(int code, char *buffer, int capacity) {
    if (capacity > 0) snprintf(buffer, (size_t)capacity, "built without Open MPI (error %d): install libopenmpi-dev and rebuild", code);
}
int bm_mpi_barrier(void) { return BM_MPI_NOT_BUILT; }
int bm_mpi_bcast_bytes(void *buffer, int64_t bytes, int root) { (void)buffer; (void)bytes; (void)root; return BM_MPI_NOT_BUILT; }
int bm_mpi_allgather_floats(const float *send, int count, float *recv) { (void)send; (void)count; (void)recv; return BM_MPI_NOT_BUILT; }
int bm_mpi_alltoallv_floats(const float *send, const int *send_counts, const int *send_displs,
                            float *recv, const int *recv_counts, const int *recv_displs) {
    (void)send; (void)send_counts; (void)send_displs; (void)recv; (void)recv_counts; (void)recv_displs;
    return BM_MPI_NOT_BUILT;
}
int bm_mpi_allgatherv_floats(const float *send, int count, float *recv, const int *recv_counts, const int *recv_displs) {
    (void)send; (void)count; (void)recv; (void)recv_counts; (void)recv_displs;
    return BM_MPI_NOT_BUILT;
}
int bm_mpi_allreduce_max_int(int value, int *result) { *result = value; return BM_MPI_NOT_BUILT; }

#endif
