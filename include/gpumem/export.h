/* gpumem/export.h: symbol visibility. The library is built with hidden
 * visibility; only declarations marked GPUMEM_API are exported from the shared
 * object. Consumers of the static library get GPUMEM_STATIC from CMake (or
 * define it themselves) and see plain declarations. */
#ifndef GPUMEM_EXPORT_H
#define GPUMEM_EXPORT_H

/** @def GPUMEM_API
 * Marks a declaration that the shared library exports (default visibility under GCC and
 * Clang); empty when GPUMEM_STATIC is defined. */
#if defined(GPUMEM_STATIC)
#define GPUMEM_API
#elif defined(__GNUC__) || defined(__clang__)
#define GPUMEM_API __attribute__((visibility("default")))
#else
#define GPUMEM_API
#endif

/** @def GPUMEM_PRINTF
 * Declares a printf-like function for GCC and Clang to check: `fmt` is the position of the
 * format argument, `args` of the first one it formats (from 1). Empty elsewhere. */
/** @def GPUMEM_NODISCARD
 * Marks a function whose result must not be ignored (warn_unused_result): every status
 * return. Empty where the compiler is not GCC or Clang. */
#if defined(__GNUC__) || defined(__clang__)
#define GPUMEM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/* A status that must not be ignored: the compiler warns when it is. */
#define GPUMEM_NODISCARD __attribute__((warn_unused_result))
#else
#define GPUMEM_PRINTF(fmt, args)
#define GPUMEM_NODISCARD
#endif

/** @def GPUMEM_EXTERN_C_BEGIN
 * Opens C linkage for the declarations of a header when compiled as C++; empty in C. */
/** @def GPUMEM_EXTERN_C_END
 * Closes what GPUMEM_EXTERN_C_BEGIN opened. */
#ifdef __cplusplus
#define GPUMEM_EXTERN_C_BEGIN extern "C" {
#define GPUMEM_EXTERN_C_END   }
#else
#define GPUMEM_EXTERN_C_BEGIN
#define GPUMEM_EXTERN_C_END
#endif

#endif
