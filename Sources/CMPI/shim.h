/* Open MPI through pkg-config `ompi-c` (libopenmpi-dev). Only the C shim (CMPIShim) includes
 * this; Swift never sees MPI's types or macros. No `link` line here: `-lmpi` comes from
 * pkg-config when the package is found, so a machine without Open MPI links without it and the
 * shim compiles its stubs (see CMPIShim). */
#if __has_include(<mpi.h>)
#include <mpi.h>
#endif
