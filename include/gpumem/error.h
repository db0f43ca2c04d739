/* gpumem/error.h: status codes and the last-error sentence.
 *
 * Every public function returns a gpumem_status. GPUMEM_OK (0) is success;
 * every other code is a failure that left the objects involved as they were.
 * The codes, their names and their messages come from one table,
 * GPUMEM_STATUS_MAP, so the three can never disagree.
 *
 * A failing call also writes a sentence for the calling thread, read with
 * gpumem_last_error(): it names the library function, what went wrong, and,
 * where a CUDA call failed, that call and its CUDA error name, e.g.
 *
 *   gpumem_vmm_create: cuMemCreate(size=2097152, device=0) failed:
 *   CUDA_ERROR_OUT_OF_MEMORY (out of memory)
 */
#ifndef GPUMEM_ERROR_H
#define GPUMEM_ERROR_H

#include "gpumem/export.h"

GPUMEM_EXTERN_C_BEGIN

/** The status table: one X(name, value, message) per code, which is GPUMEM_<name> = value in
 * gpumem_status, named "GPUMEM_<name>" by gpumem_status_name and described by `message`
 * (gpumem_status_string). Values are stable: new codes are appended. */
#define GPUMEM_STATUS_MAP(X)                                                  \
  X(OK, 0, "success")                                                         \
  X(ERR_INVALID_ARGUMENT, 1, "invalid argument")                              \
  X(ERR_NO_DEVICE, 2, "no usable CUDA driver or device")                      \
  X(ERR_INVALID_DEVICE, 3, "no such device")                                  \
  X(ERR_OUT_OF_MEMORY, 4, "out of device memory")                             \
  X(ERR_CAPACITY, 5, "request exceeds the object's maximum size")             \
  X(ERR_NOT_SUPPORTED, 6, "not supported by this device, driver or backend")  \
  X(ERR_NOT_PERMITTED, 7, "not permitted by the system")                      \
  X(ERR_PEER_UNSUPPORTED, 8, "the devices cannot access each other's memory") \
  X(ERR_INVALID_POINTER, 9, "pointer or handle not owned by this object")     \
  X(ERR_DOUBLE_FREE, 10, "pointer or handle already freed")                   \
  X(ERR_NOT_MAPPED, 11, "address range not mapped")                           \
  X(ERR_ALREADY_MAPPED, 12, "address range already mapped")                   \
  X(ERR_NOT_READY, 13, "asynchronous work has not completed yet")             \
  X(ERR_BUSY, 14, "object is still in use")                                   \
  X(ERR_STATE, 15, "library state does not allow this call")                  \
  X(ERR_DRIVER, 16, "CUDA driver or runtime error")                           \
  X(ERR_OS, 17, "operating system call failed")                               \
  X(ERR_INJECTED, 18, "failure injected for testing")                         \
  X(ERR_INTERNAL, 19, "internal error in libgpumem")                          \
  X(ERR_NOT_FOUND, 20, "nothing matches the request")

/** Result of every public call: GPUMEM_OK (0) or a GPUMEM_ERR_ code, one per row of
 * GPUMEM_STATUS_MAP. */
typedef enum gpumem_status {
#define GPUMEM_STATUS_ENUM_(name, value, msg) GPUMEM_##name = value,
  GPUMEM_STATUS_MAP(GPUMEM_STATUS_ENUM_)
#undef GPUMEM_STATUS_ENUM_
} gpumem_status;

/** @def GPUMEM_STATUS_COUNT
 * Number of status codes (one past the largest value), counted from the
 * table (values are 0, 1, 2, ... in order). */
#define GPUMEM_STATUS_ONE_(name, value, msg) +1
#define GPUMEM_STATUS_COUNT                  (0 GPUMEM_STATUS_MAP(GPUMEM_STATUS_ONE_))

/** The code's message, such as "out of device memory"; "unknown status" for a
 * value outside the table. Never NULL; thread-safe; needs no initialisation. */
GPUMEM_API const char *gpumem_status_string(gpumem_status status);

/** The code's name, such as "GPUMEM_ERR_OUT_OF_MEMORY"; "GPUMEM_UNKNOWN_STATUS"
 * for a value outside the table. Never NULL; thread-safe. */
GPUMEM_API const char *gpumem_status_name(gpumem_status status);

/** The sentence describing the most recent failure on the calling thread
 * ("" if none yet). Successful calls leave it unchanged. The pointer stays
 * valid for the thread's lifetime; the text changes at its next failure. */
GPUMEM_API const char *gpumem_last_error(void);

/** The status of the most recent failure on the calling thread (GPUMEM_OK if
 * none yet). */
GPUMEM_API GPUMEM_NODISCARD gpumem_status gpumem_last_status(void);

/** Forget the calling thread's last error. */
GPUMEM_API void gpumem_clear_last_error(void);

GPUMEM_EXTERN_C_END

#endif
