#include <cblas.h>
/* OpenBLAS extensions: thread control. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
/* glibc allocator tuning (mallopt): numeric code reuses large activation buffers. */
#include <malloc.h>
