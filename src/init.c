/* init.c: bringing the library up and down.
 *
 * Initialisation happens once, lazily on the first call that needs a backend
 * (gm_ensure_init) or explicitly through gpumem_init(). It reads the options
 * table from the environment, applies the caller's overrides, opens the log
 * file, arms failure injection from GPUMEM_FAULT, and opens the chosen
 * backend. A backend that cannot open (no CUDA driver, no device) leaves the
 * library uninitialised and returns GPUMEM_ERR_NO_DEVICE with its reason;
 * the next call tries again, so a process never gets host memory it did not
 * ask for. After success the fast path is one acquire load.
 *
 * gpumem_finalize() refuses (GPUMEM_ERR_BUSY) while the backend counters show
 * live objects, so that nothing a caller still holds is torn down under it.
 *
 * Fork. A child forked from a process that initialised CUDA cannot use CUDA
 * (the CUDA programming guide: the driver's state is not inherited; calls in
 * the child are undefined). The first successful initialisation registers
 * a pthread_atfork child handler: in the child the init lock is made anew
 * and `ready` turns from READY to FORKED. Every entry point that needs the backend goes through
 * gm_ensure_init (GM_API_FORWARD), whose fast path is still one load and
 * compare; its slow path refuses FORKED with GPUMEM_ERR_STATE naming the
 * parent's pid. The host backend is refused the same way: its state (worker
 * threads, descriptors) was made by the parent and the threads did not come
 * along. gpumem_finalize() in such a child forgets the parent's state without
 * calling the backend (the objects belong to the parent; nothing is released)
 * and returns the library to "not initialised", so that the child may call
 * gpumem_init() afresh; a child that execs needs none of this.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "abi.h"
#include "allocator.h"
#include "backend.h"
#include "backend/host.h"
#include "frameworks.h"
#include "gpumem/init.h"
#include "gpumem/version.h"
#include "log.h"
#include "options.h"
#include "trace.h"

/* `ready`: NOT_READY, READY, or FORKED (a forked child of a process that
 * was READY: refused until gpumem_finalize). */
enum { NOT_READY = 0, READY = 1, FORKED = 2 };

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int ready;
static bool options_loaded;
static pid_t init_pid; /* the process that initialised (init lock) */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In the child of fork(): the child has one thread, so the init lock, which
 * another thread of the parent may have held, is made anew (taking it around
 * fork instead would deadlock a fork made under it, such as a driver starting
 * a helper program during initialisation). */
static void fork_child(void) {
  pthread_mutex_init(&init_lock, NULL);
  if (atomic_load(&ready) == READY) {
    atomic_store(&ready, FORKED);
    gm_backend_refuse_forked((long)init_pid);
  }
}
static void register_atfork(void) {
  if (pthread_atfork(NULL, NULL, fork_child) != 0) {
    gm_log(GPUMEM_LOG_WARN, "pthread_atfork failed: a forked child will not be told it "
                            "cannot use the backend");
  }
}

/* The refusal in a forked child (init lock held). */
static gpumem_status forked_error(void) {
  return gm_backend_forked_error((long)init_pid);
}

static gpumem_status apply_options(const gpumem_init_options *o) {
  gpumem_status st = GPUMEM_OK;
  char text[64];
  GM_REQUIRE((int)o->backend >= GPUMEM_BACKEND_DEFAULT && o->backend <= GPUMEM_BACKEND_HOST,
             GPUMEM_ERR_INVALID_ARGUMENT, "backend %d is not a gpumem_backend_kind",
             (int)o->backend);
  if (o->backend != GPUMEM_BACKEND_DEFAULT) {
    gm_option_set(GM_OPTION_BACKEND, o->backend == GPUMEM_BACKEND_HOST ? "host" : "cuda",
                  GM_OPTION_SOURCE_INIT);
  }
  if (o->host_devices != 0) {
    snprintf(text, sizeof text, "%d", o->host_devices);
    GM_REQUIRE(gm_option_set(GM_OPTION_HOST_DEVICES, text, GM_OPTION_SOURCE_INIT),
               GPUMEM_ERR_INVALID_ARGUMENT, "host_devices %d is outside 1..%d", o->host_devices,
               GPUMEM_MAX_DEVICES);
  }
  if (o->host_capacity != 0) {
    snprintf(text, sizeof text, "%zu", o->host_capacity);
    GM_REQUIRE(gm_option_set(GM_OPTION_HOST_CAPACITY, text, GM_OPTION_SOURCE_INIT),
               GPUMEM_ERR_INVALID_ARGUMENT, "host_capacity %zu is not valid", o->host_capacity);
  }
  if (o->host_granularity != 0) {
    snprintf(text, sizeof text, "%zu", o->host_granularity);
    GM_REQUIRE(gm_option_set(GM_OPTION_HOST_GRANULARITY, text, GM_OPTION_SOURCE_INIT),
               GPUMEM_ERR_INVALID_ARGUMENT,
               "host_granularity %zu is not a power of two between 4 KiB and 1 GiB",
               o->host_granularity);
  }
  if (o->host_peers != NULL) {
    GM_REQUIRE(gm_option_set(GM_OPTION_HOST_PEERS, o->host_peers, GM_OPTION_SOURCE_INIT),
               GPUMEM_ERR_INVALID_ARGUMENT, "host_peers '%s' is too long", o->host_peers);
  }
  if (o->host_uuids != NULL) {
    GM_REQUIRE(gm_option_set(GM_OPTION_HOST_UUIDS, o->host_uuids, GM_OPTION_SOURCE_INIT),
               GPUMEM_ERR_INVALID_ARGUMENT, "host_uuids is too long");
  }
fail:
  return st;
}

/* Bring the library up (init lock held). */
static gpumem_status initialise(const gpumem_init_options *options) {
  gpumem_status st = GPUMEM_OK;
  if (!options_loaded) {
    gm_options_load();
    const char *file = gm_option_string(GM_OPTION_LOG_FILE);
    if (file[0] != '\0' && gpumem_log_set_file(file) != GPUMEM_OK) {
      gm_log(GPUMEM_LOG_WARN, "%s: %s; logging to stderr", gm_option_env_name(GM_OPTION_LOG_FILE),
             gpumem_last_error());
    }
    options_loaded = true;
  }
  if (options != NULL) {
    gpumem_init_options o;
    GM_TRY(gm_abi_read(options, sizeof o, &(gpumem_init_options)GPUMEM_INIT_OPTIONS_INIT, &o,
                       "init options (GPUMEM_INIT_OPTIONS_INIT)"));
    GM_TRY(apply_options(&o));
  }
  const gm_backend_ops *ops =
      gm_option_word(GM_OPTION_BACKEND) == GM_BACKEND_HOST ? &gm_backend_host : &gm_backend_cuda;
  GM_TRY(ops->open());
  const char *fault = gm_option_string(GM_OPTION_FAULT);
  if (fault[0] != '\0' && !gm_fault_parse(fault)) {
    gm_log(GPUMEM_LOG_WARN,
           "%s='%s' is not op:N[,op:N...] with a backend operation name; no "
           "failure injected",
           gm_option_env_name(GM_OPTION_FAULT), fault);
  }
  gm_backend_install(ops);
  pthread_once(&atfork_once, register_atfork);
  init_pid = getpid();
  atomic_store_explicit(&ready, READY, memory_order_release);
  gm_log(GPUMEM_LOG_INFO, "libgpumem %s initialised with the %s backend", GPUMEM_VERSION_STRING,
         ops->name);
  return GPUMEM_OK;
fail:
  /* Drop the overrides applied for this attempt: the next one starts from the
   * environment. (Without overrides keep what was read, so that a bad
   * variable is warned about once, not at every retry.) */
  if (options != NULL) options_loaded = false;
  return st;
}

gpumem_status gm_ensure_init(void) {
  if (atomic_load_explicit(&ready, memory_order_acquire) == READY) return GPUMEM_OK;
  pthread_mutex_lock(&init_lock);
  int now = atomic_load(&ready);
  gpumem_status st = now == READY ? GPUMEM_OK : now == FORKED ? forked_error() : initialise(NULL);
  pthread_mutex_unlock(&init_lock);
  return st;
}

GPUMEM_API gpumem_status gpumem_init(const gpumem_init_options *options) {
  gpumem_status st = GPUMEM_OK;
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&ready) == FORKED) {
    st = forked_error();
  } else if (atomic_load(&ready)) {
    st = gm_error(GPUMEM_ERR_STATE,
                  "libgpumem is already initialised with the %s backend; call gpumem_finalize() "
                  "first",
                  gm_backend()->name);
  } else {
    options_loaded = false; /* an explicit init reads the environment afresh */
    st = initialise(options);
  }
  pthread_mutex_unlock(&init_lock);
  GM_RETURN(st);
}

GPUMEM_API gpumem_status gpumem_finalize(void) {
  gpumem_status st = GPUMEM_OK;
  if (atomic_load(&ready) == READY) {
    gm_allocator_release_default();           /* libgpumem's own */
    if (gm_frameworks_release() != GPUMEM_OK) /* one with blocks stays: BUSY below counts them */
      gm_error_discard();
  }
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&ready) == FORKED) {
    /* A forked child: forget the parent's state without calling the backend
     * (see the essay above); the child may then gpumem_init afresh. */
    gm_log(GPUMEM_LOG_INFO, "forked child of process %ld: libgpumem state forgotten",
           (long)init_pid);
    gm_trace_close(); /* the child's copy of the descriptor */
    if (gm_backend()->kind == GM_BACKEND_HOST) {
      /* Host memory is the child's copy: free it, once the parent's worker
       * threads (absent here) are forgotten. CUDA is not called at all. */
      gm_host_streams_forget_workers();
      gm_backend()->close();
    }
    gm_backend_install(NULL);
    gm_backend_reset_tracking();
    gm_backend_accept_calls();
    options_loaded = false;
    atomic_store(&ready, NOT_READY);
  } else if (atomic_load(&ready)) {
    gm_backend_counters c;
    gm_backend_get_counters(&c);
    if (c.reservations || c.phys_handles || c.mapped_bytes || c.streams || c.events || c.pools ||
        c.pool_allocations || c.device_allocations) {
      st = gm_error(GPUMEM_ERR_BUSY,
                    "objects still alive: %" PRId64 " reservations, %" PRId64
                    " physical handles, %" PRId64 " mapped bytes, %" PRId64 " streams, %" PRId64
                    " events, %" PRId64 " pools, %" PRId64 " pool allocations, %" PRId64
                    " device allocations",
                    c.reservations, c.phys_handles, c.mapped_bytes, c.streams, c.events, c.pools,
                    c.pool_allocations, c.device_allocations);
    } else {
      gm_backend()->close();
      gm_trace_close();
      gm_backend_install(NULL);
      gm_backend_reset_tracking();
      options_loaded = false;
      atomic_store(&ready, NOT_READY);
    }
  }
  pthread_mutex_unlock(&init_lock);
  GM_RETURN(st);
}

GPUMEM_API gpumem_backend_kind gpumem_backend(void) {
  const gm_backend_ops *be = gm_backend();
  if (be == NULL) return GPUMEM_BACKEND_DEFAULT;
  return be->kind == GM_BACKEND_HOST ? GPUMEM_BACKEND_HOST : GPUMEM_BACKEND_CUDA;
}

GPUMEM_API const char *gpumem_backend_name(void) {
  const gm_backend_ops *be = gm_backend();
  return be ? be->name : "none";
}

GPUMEM_API int gpumem_version(void) {
  return GPUMEM_VERSION;
}

GPUMEM_API const char *gpumem_version_string(void) {
  return GPUMEM_VERSION_STRING;
}

GPUMEM_API void gpumem_cuda_versions(int *driver, int *runtime) {
  int d = 0, r = 0;
  const gm_backend_ops *be = gm_backend();
  (be ? be : &gm_backend_cuda)->versions(&d, &r);
  if (driver) *driver = d;
  if (runtime) *runtime = r;
}

static atomic_uint next_thread_slot;
static GM_TLS_FAST unsigned thread_slot_plus_one;

unsigned gm_thread_slot(void) {
  if (thread_slot_plus_one == 0)
    thread_slot_plus_one =
        atomic_fetch_add_explicit(&next_thread_slot, 1, memory_order_relaxed) + 1;
  return thread_slot_plus_one - 1;
}
