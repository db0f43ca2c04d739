/* The consumer test's program: uses the installed headers and library. It
 * prints "consumer <version> <link>", where <link> says whether the build
 * defined GPUMEM_STATIC (as gpumem::gpumem_static and gpumem-static.pc do).
 * No public header may need CUDA: a consumer of the shared library builds
 * without the toolkit, so including <gpumem/gpumem.h> must not pull in a
 * CUDA header (each one's include guard is checked below). */
#include <stdio.h>
#include <string.h>

#include <gpumem/gpumem.h>

#if defined(__CUDA_RUNTIME_API_H__) || defined(__cuda_cuda_h__) || defined(__DRIVER_TYPES_H__)
#error "a public gpumem header includes a CUDA header"
#endif

#ifdef GPUMEM_STATIC
#define CONSUMER_LINK "static"
#else
#define CONSUMER_LINK "shared"
#endif

int main(void) {
  if (gpumem_version() != GPUMEM_VERSION) {
    fprintf(stderr, "header version %d, library version %d\n", GPUMEM_VERSION, gpumem_version());
    return 1;
  }
  gpumem_init_options opts = GPUMEM_INIT_OPTIONS_INIT;
  opts.backend = GPUMEM_BACKEND_HOST;
  opts.host_devices = 1;
  if (gpumem_init(&opts) != GPUMEM_OK) {
    fprintf(stderr, "init: %s\n", gpumem_last_error());
    return 1;
  }
  gpumem_phys_props props = GPUMEM_PHYS_PROPS_INIT;
  size_t gran = 0;
  void *va = NULL;
  gpumem_phys_t h = 0;
  gpumem_access_desc rw = {0, GPUMEM_ACCESS_READWRITE};
  char in[16] = "consumer", out[16] = {0};
  if (gpumem_vmm_granularity(&props, false, &gran) || gpumem_vmm_reserve(gran, 0, &va) ||
      gpumem_vmm_create(&props, gran, &h) || gpumem_vmm_map(va, gran, 0, h) ||
      gpumem_vmm_set_access(va, gran, &rw, 1) || gpumem_memcpy(va, in, sizeof in, NULL) ||
      gpumem_memcpy(out, va, sizeof out, NULL) || gpumem_vmm_unmap(va, gran) ||
      gpumem_vmm_release(h) || gpumem_vmm_free(va, gran) || gpumem_finalize()) {
    fprintf(stderr, "vmm: %s\n", gpumem_last_error());
    return 1;
  }
  printf("%s %s %s\n", out, gpumem_version_string(), CONSUMER_LINK);
  return strcmp(in, out) != 0;
}
