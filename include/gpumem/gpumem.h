/* gpumem/gpumem.h: everything libgpumem offers, in one include.
 *
 * libgpumem manages GPU memory for HPC applications: checked virtual memory
 * primitives (vmm.h), devices and their capabilities (device.h), streams and
 * copies on either backend (stream.h), errors (error.h), logging (log.h) and
 * initialisation (init.h). Every function returns a gpumem_status; on
 * failure gpumem_last_error() holds the sentence that explains it.
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

#endif
