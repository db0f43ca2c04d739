/* gpumem/gpumem.h: everything libgpumem offers, in one include.
 *
 * libgpumem manages GPU memory for HPC applications:
 *
 *   buffer.h     a growable buffer on CUDA's virtual memory API
 *   pool.h       a stream-ordered pool with a per-thread cache in front
 *   arena.h      a multi-GPU peer-mapped arena
 *   allocator.h  one alloc/free interface over all of them and the CUDA
 *                baselines, a process-wide default allocator
 *   stats.h      the one statistics shape they all report
 *   frameworks.h one allocator per device for PyTorch, CuPy and Numba
 *   vmm.h        checked virtual memory primitives
 *   device.h     devices, their capabilities, selection per MPI rank
 *   mig.h        MIG slices and CUDA_VISIBLE_DEVICES explained
 *   stream.h     streams, events, copies on either backend
 *   init.h       initialisation, backends, versions
 *   error.h      status codes and the last-error sentence
 *   log.h        logging
 *   types.h      handles shared with CUDA; export.h, version.h: build details
 *
 * Every function that can fail returns a gpumem_status (GPUMEM_NODISCARD:
 * the compiler warns when it is ignored); on failure gpumem_last_error()
 * holds the sentence that explains it.
 */
#ifndef GPUMEM_GPUMEM_H
#define GPUMEM_GPUMEM_H

#include "gpumem/export.h"
#include "gpumem/version.h"
#include "gpumem/types.h"
#include "gpumem/error.h"
#include "gpumem/log.h"
#include "gpumem/init.h"
#include "gpumem/device.h"
#include "gpumem/mig.h"
#include "gpumem/stream.h"
#include "gpumem/vmm.h"
#include "gpumem/stats.h"
#include "gpumem/allocator.h"
#include "gpumem/buffer.h"
#include "gpumem/pool.h"
#include "gpumem/arena.h"
#include "gpumem/frameworks.h"

#endif
