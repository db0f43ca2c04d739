/* gpumem/export.h: symbol visibility. The library is built with hidden
 * visibility; only declarations marked GPUMEM_API are exported from the shared
 * object. Consumers of the static library get GPUMEM_STATIC from CMake (or
 * define it themselves) and see plain declarations. */
#ifndef GPUMEM_EXPORT_H
#define GPUMEM_EXPORT_H

#if defined(GPUMEM_STATIC)
#define GPUMEM_API
#elif defined(__GNUC__) || defined(__clang__)
#define GPUMEM_API __attribute__((visibility("default")))
#else
#define GPUMEM_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GPUMEM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/* A status that must not be ignored: the compiler warns when it is. */
#define GPUMEM_NODISCARD __attribute__((warn_unused_result))
#else
#define GPUMEM_PRINTF(fmt, args)
#define GPUMEM_NODISCARD
#endif

#ifdef __cplusplus
#define GPUMEM_EXTERN_C_BEGIN extern "C" {
#define GPUMEM_EXTERN_C_END   }
#else
#define GPUMEM_EXTERN_C_BEGIN
#define GPUMEM_EXTERN_C_END
#endif

#endif
