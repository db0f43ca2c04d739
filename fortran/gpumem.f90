! gpumem.f90: the Fortran module of libgpumem (use gpumem).
!
! What it covers: initialisation and backend choice, status codes and the
! last error's sentence, device count and selection by node-local rank,
! streams and the copy/memset helpers, and the three allocators: the
! stream-ordered pool, the multi-GPU arena and the growable buffer, each
! with its statistics. Everything is ISO_C_BINDING; no C preprocessor, no
! compiler extension.
!
! How it binds. Calls whose arguments are handles, sizes and ints are bound
! directly to the C functions (private interfaces, bind(C, name=...)). The
! configuration structs are not mirrored: each of them starts with
! struct_size and grows from release to release, and a Fortran copy would
! have to follow every field and padding byte of every release. Instead the
! creation calls go through small C shims (gpumem_fortran.c, built and
! installed with the library as libgpumem_fortran) that start from the
! headers' INIT macros and set the few fields Fortran passes as arguments,
! optional ones with the C defaults. The only mirrored struct is
! gpumem_stats, made of size_t and uint64_t fields only (no padding, no
! bool); the tests check c_sizeof against the C sizeof
! (gpumem_fortran_stats_size).
!
! Conventions:
! - Every call that can fail is an integer function returning the status
!   (GPUMEM_OK or a GPUMEM_ERR_ code, the same values as in C); on failure
!   gpumem_last_error() returns the library's sentence as a
!   character(:), allocatable.
! - Handles are derived types (gpumem_pool, gpumem_arena, gpumem_buffer,
!   gpumem_stream) wrapping the C pointer, so that a pool cannot be passed
!   where an arena is wanted; a successful destroy resets the handle.
! - Device memory is type(c_ptr). On a GPU it is not host-accessible: move
!   data with gpumem_memcpy (from or to c_loc of a Fortran array) on a stream
!   and gpumem_stream_synchronize before reading. The host backend
!   (GPUMEM_BACKEND=host) emulates the same rules.
! - Sizes are integer(c_size_t) (bytes), devices integer(c_int).
!
! Build: the library's CMake builds this module when a Fortran compiler is
! found (GPUMEM_FORTRAN=ON) and installs gpumem.mod in
! <prefix>/include/gpumem/fortran; link with -lgpumem_fortran -lgpumem.
module gpumem
  use, intrinsic :: iso_c_binding
  implicit none
  private

  ! Status codes (gpumem/error.h; values are stable).
  integer(c_int), parameter, public :: GPUMEM_OK = 0, GPUMEM_ERR_INVALID_ARGUMENT = 1, &
    GPUMEM_ERR_NO_DEVICE = 2, GPUMEM_ERR_INVALID_DEVICE = 3, GPUMEM_ERR_OUT_OF_MEMORY = 4, &
    GPUMEM_ERR_CAPACITY = 5, GPUMEM_ERR_NOT_SUPPORTED = 6, GPUMEM_ERR_NOT_PERMITTED = 7, &
    GPUMEM_ERR_PEER_UNSUPPORTED = 8, GPUMEM_ERR_INVALID_POINTER = 9, &
    GPUMEM_ERR_DOUBLE_FREE = 10, GPUMEM_ERR_NOT_MAPPED = 11, GPUMEM_ERR_ALREADY_MAPPED = 12, &
    GPUMEM_ERR_NOT_READY = 13, GPUMEM_ERR_BUSY = 14, GPUMEM_ERR_STATE = 15, &
    GPUMEM_ERR_DRIVER = 16, GPUMEM_ERR_OS = 17, GPUMEM_ERR_INJECTED = 18, &
    GPUMEM_ERR_INTERNAL = 19, GPUMEM_ERR_NOT_FOUND = 20
  ! Backends (gpumem/init.h).
  integer(c_int), parameter, public :: GPUMEM_BACKEND_DEFAULT = 0, GPUMEM_BACKEND_CUDA = 1, &
    GPUMEM_BACKEND_HOST = 2
  ! Capability bits for gpumem_device_select (gpumem/device.h); combine with ior.
  integer(c_int), parameter, public :: GPUMEM_CAP_VMM = 1, GPUMEM_CAP_POOLS = 2, &
    GPUMEM_CAP_POSIX_FD = 4, GPUMEM_CAP_FABRIC = 8, GPUMEM_CAP_COMPRESSION = 16, &
    GPUMEM_CAP_MULTICAST = 32
  ! local_rank: read it from the launcher's environment (SLURM_LOCALID, ...).
  integer(c_int), parameter, public :: GPUMEM_RANK_FROM_ENV = -2
  ! Buffer growth and shareable handle types (gpumem/buffer.h, gpumem/vmm.h).
  integer(c_int), parameter, public :: GPUMEM_GROW_EXACT = 0, GPUMEM_GROW_GEOMETRIC = 1
  integer(c_int), parameter, public :: GPUMEM_HANDLE_NONE = 0, GPUMEM_HANDLE_POSIX_FD = 1, &
    GPUMEM_HANDLE_FABRIC = 8
  ! Arena placement and "any device" (gpumem/arena.h).
  integer(c_int), parameter, public :: GPUMEM_PLACE_LOCAL = 0, GPUMEM_PLACE_INTERLEAVE = 1
  integer(c_int), parameter, public :: GPUMEM_ARENA_ANY_DEVICE = -1
  ! When an arena moves free pages (gpumem_arena_remap).
  integer(c_int), parameter, public :: GPUMEM_ARENA_REMAP_BALANCED = 0, &
    GPUMEM_ARENA_REMAP_MEMORY = 1, GPUMEM_ARENA_REMAP_CALLS = 2

  !> The figures every allocator reports (gpumem/stats.h), field for field.
  type, bind(C), public :: gpumem_stats
    integer(c_size_t) :: struct_size = 0          ! set by the library
    integer(c_size_t) :: bytes_in_use = 0         ! allocated and not freed
    integer(c_size_t) :: peak_bytes_in_use = 0    ! the most bytes_in_use has been
    integer(c_size_t) :: bytes_reserved = 0       ! held from the device
    integer(c_size_t) :: peak_bytes_reserved = 0  ! the most bytes_reserved has been
    integer(c_int64_t) :: allocs = 0              ! successful allocations (uint64_t)
    integer(c_int64_t) :: frees = 0               ! successful frees (uint64_t)
    integer(c_int64_t) :: failed_allocs = 0       ! allocations refused (uint64_t)
    integer(c_size_t) :: largest_free = 0         ! largest block without growing; 0: unknown
  end type gpumem_stats

  !> Handles: the C object's pointer, c_null_ptr when there is none.
  type, public :: gpumem_pool
    type(c_ptr) :: handle = c_null_ptr
  end type gpumem_pool
  type, public :: gpumem_arena
    type(c_ptr) :: handle = c_null_ptr
  end type gpumem_arena
  type, public :: gpumem_buffer
    type(c_ptr) :: handle = c_null_ptr
  end type gpumem_buffer
  !> A stream; the default-initialised one is CUDA's legacy default stream (NULL).
  type, public :: gpumem_stream
    type(c_ptr) :: handle = c_null_ptr
  end type gpumem_stream

  public :: gpumem_init, gpumem_finalize, gpumem_last_error, gpumem_status_name, &
    gpumem_status_string, gpumem_backend_name, gpumem_version_string, &
    gpumem_device_count, gpumem_device_select, &
    gpumem_stream_create, gpumem_stream_destroy, gpumem_stream_synchronize, &
    gpumem_memcpy, gpumem_memset, &
    gpumem_pool_create, gpumem_pool_alloc, gpumem_pool_free, gpumem_pool_destroy, &
    gpumem_pool_get_stats, &
    gpumem_arena_create, gpumem_arena_alloc, gpumem_arena_free, gpumem_arena_destroy, &
    gpumem_arena_get_stats, &
    gpumem_buffer_create, gpumem_buffer_resize, gpumem_buffer_data, gpumem_buffer_size, &
    gpumem_buffer_capacity, gpumem_buffer_destroy, gpumem_buffer_get_stats, &
    gpumem_fortran_stats_size

  ! The C functions, bound as they are (private: the module's procedures
  ! below take the typed handles).
  interface
    integer(c_int) function c_finalize() bind(C, name="gpumem_finalize")
      import :: c_int
    end function
    type(c_ptr) function c_last_error() bind(C, name="gpumem_last_error")
      import :: c_ptr
    end function
    type(c_ptr) function c_status_name(status) bind(C, name="gpumem_status_name")
      import :: c_ptr, c_int
      integer(c_int), value :: status
    end function
    type(c_ptr) function c_status_string(status) bind(C, name="gpumem_status_string")
      import :: c_ptr, c_int
      integer(c_int), value :: status
    end function
    type(c_ptr) function c_backend_name() bind(C, name="gpumem_backend_name")
      import :: c_ptr
    end function
    type(c_ptr) function c_version_string() bind(C, name="gpumem_version_string")
      import :: c_ptr
    end function
    integer(c_size_t) function c_strlen(s) bind(C, name="strlen")
      import :: c_size_t, c_ptr
      type(c_ptr), value :: s
    end function
    integer(c_int) function c_device_count(count) bind(C, name="gpumem_device_count")
      import :: c_int
      integer(c_int), intent(out) :: count
    end function
    integer(c_int) function c_stream_create(device, stream) bind(C, name="gpumem_stream_create")
      import :: c_int, c_ptr
      integer(c_int), value :: device
      type(c_ptr), intent(out) :: stream
    end function
    integer(c_int) function c_stream_destroy(stream) bind(C, name="gpumem_stream_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: stream
    end function
    integer(c_int) function c_stream_synchronize(stream) &
        bind(C, name="gpumem_stream_synchronize")
      import :: c_int, c_ptr
      type(c_ptr), value :: stream
    end function
    integer(c_int) function c_memcpy(dst, src, size, stream) bind(C, name="gpumem_memcpy")
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: dst, src, stream
      integer(c_size_t), value :: size
    end function
    integer(c_int) function c_memset(dst, value, size, stream) bind(C, name="gpumem_memset")
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: dst, stream
      integer(c_int), value :: value
      integer(c_size_t), value :: size
    end function
    integer(c_int) function c_pool_alloc(pool, size, stream, ptr) bind(C, name="gpumem_pool_alloc")
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: pool, stream
      integer(c_size_t), value :: size
      type(c_ptr), intent(out) :: ptr
    end function
    integer(c_int) function c_pool_free(pool, ptr, stream) bind(C, name="gpumem_pool_free")
      import :: c_int, c_ptr
      type(c_ptr), value :: pool, ptr, stream
    end function
    integer(c_int) function c_pool_destroy(pool) bind(C, name="gpumem_pool_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: pool
    end function
    integer(c_int) function c_arena_alloc(arena, size, alignment, device, ptr) &
        bind(C, name="gpumem_arena_alloc")
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: arena
      integer(c_size_t), value :: size, alignment
      integer(c_int), value :: device
      type(c_ptr), intent(out) :: ptr
    end function
    integer(c_int) function c_arena_free(arena, ptr) bind(C, name="gpumem_arena_free")
      import :: c_int, c_ptr
      type(c_ptr), value :: arena, ptr
    end function
    integer(c_int) function c_arena_destroy(arena) bind(C, name="gpumem_arena_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: arena
    end function
    integer(c_int) function c_buffer_resize(buffer, size) bind(C, name="gpumem_buffer_resize")
      import :: c_int, c_ptr, c_size_t
      type(c_ptr), value :: buffer
      integer(c_size_t), value :: size
    end function
    type(c_ptr) function c_buffer_data(buffer) bind(C, name="gpumem_buffer_data")
      import :: c_ptr
      type(c_ptr), value :: buffer
    end function
    integer(c_size_t) function c_buffer_size(buffer) bind(C, name="gpumem_buffer_size")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: buffer
    end function
    integer(c_size_t) function c_buffer_capacity(buffer) bind(C, name="gpumem_buffer_capacity")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: buffer
    end function
    integer(c_int) function c_buffer_destroy(buffer) bind(C, name="gpumem_buffer_destroy")
      import :: c_int, c_ptr
      type(c_ptr), value :: buffer
    end function
    ! The shims of gpumem_fortran.c.
    integer(c_int) function f_init(backend, host_devices, host_capacity) &
        bind(C, name="gpumem_f_init")
      import :: c_int, c_size_t
      integer(c_int), value :: backend, host_devices
      integer(c_size_t), value :: host_capacity
    end function
    integer(c_int) function f_device_select(local_rank, caps, ordinal, reason, reason_len) &
        bind(C, name="gpumem_f_device_select")
      import :: c_int, c_char, c_size_t
      integer(c_int), value :: local_rank, caps
      integer(c_int), intent(out) :: ordinal
      character(kind=c_char), intent(out) :: reason(*)
      integer(c_size_t), value :: reason_len
    end function
    integer(c_int) function f_pool_create(device, pool) bind(C, name="gpumem_f_pool_create")
      import :: c_int, c_ptr
      integer(c_int), value :: device
      type(c_ptr), intent(out) :: pool
    end function
    integer(c_int) function f_arena_create(devices, count, placement, chunk_size, remap, &
                                           slack_percent, arena) &
        bind(C, name="gpumem_f_arena_create_remap")
      import :: c_int, c_ptr, c_size_t
      integer(c_int), intent(in) :: devices(*)
      integer(c_size_t), value :: count, chunk_size
      integer(c_int), value :: placement, remap, slack_percent
      type(c_ptr), intent(out) :: arena
    end function
    integer(c_int) function f_buffer_create(device, max_size, growth, handle_type, buffer) &
        bind(C, name="gpumem_f_buffer_create")
      import :: c_int, c_ptr, c_size_t
      integer(c_int), value :: device, growth, handle_type
      integer(c_size_t), value :: max_size
      type(c_ptr), intent(out) :: buffer
    end function
    integer(c_int) function f_pool_stats(pool, stats) bind(C, name="gpumem_f_pool_stats")
      import :: c_int, c_ptr, gpumem_stats
      type(c_ptr), value :: pool
      type(gpumem_stats), intent(inout) :: stats
    end function
    integer(c_int) function f_arena_stats(arena, stats) bind(C, name="gpumem_f_arena_stats")
      import :: c_int, c_ptr, gpumem_stats
      type(c_ptr), value :: arena
      type(gpumem_stats), intent(inout) :: stats
    end function
    integer(c_int) function f_buffer_stats(buffer, stats) bind(C, name="gpumem_f_buffer_stats")
      import :: c_int, c_ptr, gpumem_stats
      type(c_ptr), value :: buffer
      type(gpumem_stats), intent(inout) :: stats
    end function
    integer(c_size_t) function f_sizeof_stats() bind(C, name="gpumem_f_sizeof_stats")
      import :: c_size_t
    end function
  end interface

contains

  ! A C string (never NULL here) as a Fortran string of its length.
  function from_c(p) result(s)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer(c_size_t) :: n, i
    if (.not. c_associated(p)) then
      s = ''
      return
    end if
    n = c_strlen(p)
    call c_f_pointer(p, chars, [n])
    allocate (character(len=n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function from_c

  !> Initialise (gpumem_init). Optional: backend (GPUMEM_BACKEND_*), and for
  !> the host backend the number of devices and each one's memory in bytes;
  !> absent ones keep the environment's value or the default. Errors as in C:
  !> STATE (already initialised), INVALID_ARGUMENT, NO_DEVICE.
  integer(c_int) function gpumem_init(backend, host_devices, host_capacity) result(st)
    integer(c_int), intent(in), optional :: backend, host_devices
    integer(c_size_t), intent(in), optional :: host_capacity
    integer(c_int) :: b, n
    integer(c_size_t) :: cap
    b = GPUMEM_BACKEND_DEFAULT
    n = 0
    cap = 0
    if (present(backend)) b = backend
    if (present(host_devices)) n = host_devices
    if (present(host_capacity)) cap = host_capacity
    st = f_init(b, n, cap)
  end function gpumem_init

  !> Shut the backend down (gpumem_finalize). BUSY while objects are alive.
  integer(c_int) function gpumem_finalize() result(st)
    st = c_finalize()
  end function gpumem_finalize

  !> The calling thread's last failure, in a sentence ('' if none).
  function gpumem_last_error() result(s)
    character(:), allocatable :: s
    s = from_c(c_last_error())
  end function gpumem_last_error

  !> 'GPUMEM_ERR_OUT_OF_MEMORY' and the like; 'GPUMEM_UNKNOWN_STATUS' outside the table.
  function gpumem_status_name(status) result(s)
    integer(c_int), intent(in) :: status
    character(:), allocatable :: s
    s = from_c(c_status_name(status))
  end function gpumem_status_name

  !> 'out of device memory' and the like.
  function gpumem_status_string(status) result(s)
    integer(c_int), intent(in) :: status
    character(:), allocatable :: s
    s = from_c(c_status_string(status))
  end function gpumem_status_string

  !> 'cuda', 'host', or 'none' before initialisation.
  function gpumem_backend_name() result(s)
    character(:), allocatable :: s
    s = from_c(c_backend_name())
  end function gpumem_backend_name

  !> The library's version, 'major.minor.patch'.
  function gpumem_version_string() result(s)
    character(:), allocatable :: s
    s = from_c(c_version_string())
  end function gpumem_version_string

  !> Number of devices. Errors: NO_DEVICE.
  integer(c_int) function gpumem_device_count(count) result(st)
    integer(c_int), intent(out) :: count
    count = 0
    st = c_device_count(count)
  end function gpumem_device_count

  !> Choose a device (gpumem_device_select): by node-local rank when
  !> local_rank is given (>= 0, or GPUMEM_RANK_FROM_ENV), else the first
  !> qualifying one; required_caps is an ior of GPUMEM_CAP_* bits. reason,
  !> when present, receives the library's sentence on why this device.
  !> Errors: NOT_FOUND (none qualifies), INVALID_ARGUMENT, NO_DEVICE.
  integer(c_int) function gpumem_device_select(device, local_rank, required_caps, reason) &
      result(st)
    integer(c_int), intent(out) :: device
    integer(c_int), intent(in), optional :: local_rank, required_caps
    character(:), allocatable, intent(out), optional :: reason
    character(kind=c_char) :: buf(256)
    integer(c_int) :: rank, caps
    integer :: i, n
    rank = -1
    caps = 0
    device = -1
    if (present(local_rank)) rank = local_rank
    if (present(required_caps)) caps = required_caps
    buf = c_null_char
    st = f_device_select(rank, caps, device, buf, int(size(buf), c_size_t))
    if (present(reason)) then
      n = 0
      do i = 1, size(buf)
        if (buf(i) == c_null_char) exit
        n = i
      end do
      allocate (character(len=n) :: reason)
      do i = 1, n
        reason(i:i) = buf(i)
      end do
    end if
  end function gpumem_device_select

  !> A stream on `device`. Errors: INVALID_DEVICE, NO_DEVICE.
  integer(c_int) function gpumem_stream_create(device, stream) result(st)
    integer(c_int), intent(in) :: device
    type(gpumem_stream), intent(out) :: stream
    st = c_stream_create(device, stream%handle)
  end function gpumem_stream_create

  !> Destroy a stream made by gpumem_stream_create; resets the handle.
  integer(c_int) function gpumem_stream_destroy(stream) result(st)
    type(gpumem_stream), intent(inout) :: stream
    st = c_stream_destroy(stream%handle)
    if (st == GPUMEM_OK) stream%handle = c_null_ptr
  end function gpumem_stream_destroy

  !> Wait until all work on the stream is done.
  integer(c_int) function gpumem_stream_synchronize(stream) result(st)
    type(gpumem_stream), intent(in) :: stream
    st = c_stream_synchronize(stream%handle)
  end function gpumem_stream_synchronize

  !> Copy `size` bytes from src to dst on the stream (either may be host
  !> memory, e.g. c_loc of an array); synchronize before reading dst.
  integer(c_int) function gpumem_memcpy(dst, src, size, stream) result(st)
    type(c_ptr), intent(in) :: dst, src
    integer(c_size_t), intent(in) :: size
    type(gpumem_stream), intent(in) :: stream
    st = c_memcpy(dst, src, size, stream%handle)
  end function gpumem_memcpy

  !> Set `size` bytes at dst to `value` (0..255) on the stream.
  integer(c_int) function gpumem_memset(dst, value, size, stream) result(st)
    type(c_ptr), intent(in) :: dst
    integer(c_int), intent(in) :: value
    integer(c_size_t), intent(in) :: size
    type(gpumem_stream), intent(in) :: stream
    st = c_memset(dst, value, size, stream%handle)
  end function gpumem_memset

  !> A stream-ordered pool on `device`, with the C defaults (keep all freed
  !> memory, the per-thread cache on). Errors: INVALID_DEVICE, NOT_SUPPORTED,
  !> NO_DEVICE.
  integer(c_int) function gpumem_pool_create(device, pool) result(st)
    integer(c_int), intent(in) :: device
    type(gpumem_pool), intent(out) :: pool
    st = f_pool_create(device, pool%handle)
  end function gpumem_pool_create

  !> Allocate `size` bytes ordered on the stream. Errors: INVALID_ARGUMENT
  !> (size 0), OUT_OF_MEMORY.
  integer(c_int) function gpumem_pool_alloc(pool, size, stream, ptr) result(st)
    type(gpumem_pool), intent(in) :: pool
    integer(c_size_t), intent(in) :: size
    type(gpumem_stream), intent(in) :: stream
    type(c_ptr), intent(out) :: ptr
    ptr = c_null_ptr
    st = c_pool_alloc(pool%handle, size, stream%handle, ptr)
  end function gpumem_pool_alloc

  !> Free ptr ordered on the stream. Errors: INVALID_POINTER, DOUBLE_FREE.
  integer(c_int) function gpumem_pool_free(pool, ptr, stream) result(st)
    type(gpumem_pool), intent(in) :: pool
    type(c_ptr), intent(in) :: ptr
    type(gpumem_stream), intent(in) :: stream
    st = c_pool_free(pool%handle, ptr, stream%handle)
  end function gpumem_pool_free

  !> Destroy the pool (BUSY while allocations are live); resets the handle.
  integer(c_int) function gpumem_pool_destroy(pool) result(st)
    type(gpumem_pool), intent(inout) :: pool
    st = c_pool_destroy(pool%handle)
    if (st == GPUMEM_OK) pool%handle = c_null_ptr
  end function gpumem_pool_destroy

  !> The pool's figures (the `base` of gpumem_pool_stats).
  integer(c_int) function gpumem_pool_get_stats(pool, stats) result(st)
    type(gpumem_pool), intent(in) :: pool
    type(gpumem_stats), intent(out) :: stats
    st = f_pool_stats(pool%handle, stats)
  end function gpumem_pool_get_stats

  !> An arena over `devices` (0-based ordinals, no duplicates). Optional:
  !> placement (GPUMEM_PLACE_LOCAL, the default, or INTERLEAVE),
  !> chunk_size (bytes mapped by one growth; 0 or absent: 8 MiB), remap
  !> (GPUMEM_ARENA_REMAP_BALANCED, the default; MEMORY: move free pages to
  !> hold the least memory; CALLS: the fewest driver calls) and
  !> slack_percent (1..100; 0 or absent: 5). Errors: INVALID_ARGUMENT,
  !> INVALID_DEVICE, PEER_UNSUPPORTED, OUT_OF_MEMORY.
  integer(c_int) function gpumem_arena_create(devices, arena, placement, chunk_size, remap, &
                                              slack_percent) result(st)
    integer(c_int), intent(in) :: devices(:)
    type(gpumem_arena), intent(out) :: arena
    integer(c_int), intent(in), optional :: placement, remap, slack_percent
    integer(c_size_t), intent(in), optional :: chunk_size
    integer(c_int) :: place, how, slack
    integer(c_size_t) :: chunk
    integer(c_int), allocatable :: list(:)
    place = GPUMEM_PLACE_LOCAL
    chunk = 0
    how = GPUMEM_ARENA_REMAP_BALANCED
    slack = 0
    if (present(placement)) place = placement
    if (present(chunk_size)) chunk = chunk_size
    if (present(remap)) how = remap
    if (present(slack_percent)) slack = slack_percent
    ! A contiguous copy whatever the actual argument's strides, never of size
    ! 0 (a zero-sized array may have no address; count 0 asks for the default).
    allocate (list(max(size(devices), 1)))
    list(1) = 0
    list(1:size(devices)) = devices
    st = f_arena_create(list, int(size(devices), c_size_t), place, chunk, how, slack, &
                        arena%handle)
  end function gpumem_arena_create

  !> Allocate `size` bytes on `device` (a member; INTERLEAVE also
  !> GPUMEM_ARENA_ANY_DEVICE). alignment: 0 or absent 256, else a power of
  !> two up to the granularity. Errors: INVALID_ARGUMENT, INVALID_DEVICE,
  !> CAPACITY, OUT_OF_MEMORY.
  integer(c_int) function gpumem_arena_alloc(arena, size, device, ptr, alignment) result(st)
    type(gpumem_arena), intent(in) :: arena
    integer(c_size_t), intent(in) :: size
    integer(c_int), intent(in) :: device
    type(c_ptr), intent(out) :: ptr
    integer(c_size_t), intent(in), optional :: alignment
    integer(c_size_t) :: align
    align = 0
    if (present(alignment)) align = alignment
    ptr = c_null_ptr
    st = c_arena_alloc(arena%handle, size, align, device, ptr)
  end function gpumem_arena_alloc

  !> Free a block. Errors: INVALID_POINTER, DOUBLE_FREE.
  integer(c_int) function gpumem_arena_free(arena, ptr) result(st)
    type(gpumem_arena), intent(in) :: arena
    type(c_ptr), intent(in) :: ptr
    st = c_arena_free(arena%handle, ptr)
  end function gpumem_arena_free

  !> Release all of the arena's memory, live blocks included; resets the handle.
  integer(c_int) function gpumem_arena_destroy(arena) result(st)
    type(gpumem_arena), intent(inout) :: arena
    st = c_arena_destroy(arena%handle)
    if (st == GPUMEM_OK) arena%handle = c_null_ptr
  end function gpumem_arena_destroy

  !> The arena's figures (the `base` of gpumem_arena_stats).
  integer(c_int) function gpumem_arena_get_stats(arena, stats) result(st)
    type(gpumem_arena), intent(in) :: arena
    type(gpumem_stats), intent(out) :: stats
    st = f_arena_stats(arena%handle, stats)
  end function gpumem_arena_get_stats

  !> A growable buffer on `device` (size 0). Optional: max_size (the
  !> reservation; 0 or absent: the device's memory), growth
  !> (GPUMEM_GROW_EXACT, the default, or GEOMETRIC), handle_type
  !> (GPUMEM_HANDLE_NONE, the default, or POSIX_FD / FABRIC). Errors:
  !> INVALID_ARGUMENT, INVALID_DEVICE, NOT_SUPPORTED, OUT_OF_MEMORY.
  integer(c_int) function gpumem_buffer_create(device, buffer, max_size, growth, handle_type) &
      result(st)
    integer(c_int), intent(in) :: device
    type(gpumem_buffer), intent(out) :: buffer
    integer(c_size_t), intent(in), optional :: max_size
    integer(c_int), intent(in), optional :: growth, handle_type
    integer(c_size_t) :: max
    integer(c_int) :: grow, handles
    max = 0
    grow = GPUMEM_GROW_EXACT
    handles = GPUMEM_HANDLE_NONE
    if (present(max_size)) max = max_size
    if (present(growth)) grow = growth
    if (present(handle_type)) handles = handle_type
    st = f_buffer_create(device, max, grow, handles, buffer%handle)
  end function gpumem_buffer_create

  !> Set the size in bytes, growing the capacity when needed; the data
  !> pointer never changes. Errors: CAPACITY (past max_size), OUT_OF_MEMORY.
  integer(c_int) function gpumem_buffer_resize(buffer, size) result(st)
    type(gpumem_buffer), intent(in) :: buffer
    integer(c_size_t), intent(in) :: size
    st = c_buffer_resize(buffer%handle, size)
  end function gpumem_buffer_resize

  !> The device pointer, the same for the buffer's whole life.
  type(c_ptr) function gpumem_buffer_data(buffer) result(p)
    type(gpumem_buffer), intent(in) :: buffer
    p = c_buffer_data(buffer%handle)
  end function gpumem_buffer_data

  !> Bytes in use.
  integer(c_size_t) function gpumem_buffer_size(buffer) result(n)
    type(gpumem_buffer), intent(in) :: buffer
    n = c_buffer_size(buffer%handle)
  end function gpumem_buffer_size

  !> Bytes mapped.
  integer(c_size_t) function gpumem_buffer_capacity(buffer) result(n)
    type(gpumem_buffer), intent(in) :: buffer
    n = c_buffer_capacity(buffer%handle)
  end function gpumem_buffer_capacity

  !> Unmap and release the buffer; resets the handle.
  integer(c_int) function gpumem_buffer_destroy(buffer) result(st)
    type(gpumem_buffer), intent(inout) :: buffer
    st = c_buffer_destroy(buffer%handle)
    if (st == GPUMEM_OK) buffer%handle = c_null_ptr
  end function gpumem_buffer_destroy

  !> The buffer's figures (the `base` of gpumem_buffer_stats).
  integer(c_int) function gpumem_buffer_get_stats(buffer, stats) result(st)
    type(gpumem_buffer), intent(in) :: buffer
    type(gpumem_stats), intent(out) :: stats
    st = f_buffer_stats(buffer%handle, stats)
  end function gpumem_buffer_get_stats

  !> sizeof(gpumem_stats) in C, for checking the mirror: it must equal
  !> c_sizeof(a gpumem_stats) here.
  integer(c_size_t) function gpumem_fortran_stats_size() result(n)
    n = f_sizeof_stats()
  end function gpumem_fortran_stats_size

end module gpumem
