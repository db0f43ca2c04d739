! test_fortran.f90: the Fortran module's test (ctest fortran.module, host backend).
!
! Each check compares a value read back through the module with what the C
! library must give: the mirrored gpumem_stats against C's sizeof, the status
! constants against the C table's names, a refused call's status and its
! message, and, for each allocator, bytes written through the copy helpers
! and read back, and the statistics after each step. A failed check prints
! "FAIL" with what differed and the program stops with a non-zero code.
program test_fortran
  use, intrinsic :: iso_c_binding
  use gpumem
  implicit none

  integer :: failures = 0
  integer(c_int) :: st, count, device, i
  character(:), allocatable :: reason, msg
  type(gpumem_stats) :: stats
  type(gpumem_stream) :: stream
  type(gpumem_pool) :: pool
  type(gpumem_arena) :: arena
  type(gpumem_buffer) :: buf
  type(c_ptr) :: p, q
  integer(c_int8_t), target :: out(4096), back(4096)
  integer(c_size_t), parameter :: MiB = 1048576_c_size_t
  integer(c_size_t) :: bytes
  character(len=*), parameter :: names(0:20) = [character(len=32) :: 'GPUMEM_OK', &
    'GPUMEM_ERR_INVALID_ARGUMENT', 'GPUMEM_ERR_NO_DEVICE', 'GPUMEM_ERR_INVALID_DEVICE', &
    'GPUMEM_ERR_OUT_OF_MEMORY', 'GPUMEM_ERR_CAPACITY', 'GPUMEM_ERR_NOT_SUPPORTED', &
    'GPUMEM_ERR_NOT_PERMITTED', 'GPUMEM_ERR_PEER_UNSUPPORTED', 'GPUMEM_ERR_INVALID_POINTER', &
    'GPUMEM_ERR_DOUBLE_FREE', 'GPUMEM_ERR_NOT_MAPPED', 'GPUMEM_ERR_ALREADY_MAPPED', &
    'GPUMEM_ERR_NOT_READY', 'GPUMEM_ERR_BUSY', 'GPUMEM_ERR_STATE', 'GPUMEM_ERR_DRIVER', &
    'GPUMEM_ERR_OS', 'GPUMEM_ERR_INJECTED', 'GPUMEM_ERR_INTERNAL', 'GPUMEM_ERR_NOT_FOUND']
  integer(c_int), parameter :: codes(0:20) = [GPUMEM_OK, GPUMEM_ERR_INVALID_ARGUMENT, &
    GPUMEM_ERR_NO_DEVICE, GPUMEM_ERR_INVALID_DEVICE, GPUMEM_ERR_OUT_OF_MEMORY, &
    GPUMEM_ERR_CAPACITY, GPUMEM_ERR_NOT_SUPPORTED, GPUMEM_ERR_NOT_PERMITTED, &
    GPUMEM_ERR_PEER_UNSUPPORTED, GPUMEM_ERR_INVALID_POINTER, GPUMEM_ERR_DOUBLE_FREE, &
    GPUMEM_ERR_NOT_MAPPED, GPUMEM_ERR_ALREADY_MAPPED, GPUMEM_ERR_NOT_READY, GPUMEM_ERR_BUSY, &
    GPUMEM_ERR_STATE, GPUMEM_ERR_DRIVER, GPUMEM_ERR_OS, GPUMEM_ERR_INJECTED, &
    GPUMEM_ERR_INTERNAL, GPUMEM_ERR_NOT_FOUND]

  ! The mirror of gpumem_stats has C's size, and every status constant is
  ! the C code of the same name (one past the table is unknown).
  call expect(c_sizeof(stats) == gpumem_fortran_stats_size(), 'c_sizeof(gpumem_stats) == sizeof')
  do i = 0, 20
    call expect(gpumem_status_name(codes(i)) == trim(names(i)), 'status name of ' // trim(names(i)))
  end do
  call expect(gpumem_status_name(21_c_int) == 'GPUMEM_UNKNOWN_STATUS', 'status 21 is unknown')
  call expect(gpumem_status_string(GPUMEM_ERR_OUT_OF_MEMORY) == 'out of device memory', &
              'status string')
  call expect(gpumem_backend_name() == 'none', 'no backend before init')

  ! Init: 3 emulated devices of 256 MiB; a second init is refused (STATE)
  ! with a message; the device count reads back 3.
  call check(gpumem_init(GPUMEM_BACKEND_HOST, 3_c_int, 256 * MiB), 'init')
  call expect(gpumem_backend_name() == 'host', 'backend is host')
  st = gpumem_init()
  call expect(st == GPUMEM_ERR_STATE, 'second init: ' // gpumem_status_name(st))
  msg = gpumem_last_error()
  call expect(index(msg, 'gpumem_init') > 0, 'second init message names the call: ' // msg)
  call check(gpumem_device_count(count), 'device_count')
  call expect(count == 3, 'three devices')

  ! Selection by node-local rank: rank 4 of 3 GPUs takes device 1.
  call check(gpumem_device_select(device, local_rank=4_c_int, &
             required_caps=ior(GPUMEM_CAP_VMM, GPUMEM_CAP_POOLS), reason=reason), 'select')
  call expect(device == 1, 'rank 4 selects device 1')
  call expect(index(reason, 'rank 4') > 0, 'reason names the rank: ' // reason)
  st = gpumem_device_select(device, required_caps=GPUMEM_CAP_MULTICAST)
  call expect(st == GPUMEM_ERR_NOT_FOUND .or. st == GPUMEM_OK, 'select multicast: ' // &
              gpumem_status_name(st))

  do i = 1, size(out)
    out(i) = int(mod(i * 7, 127), c_int8_t)
  end do
  call check(gpumem_stream_create(1_c_int, stream), 'stream_create')

  ! Pool: alloc, copy in and back, stats, the refused size 0, free, destroy.
  call check(gpumem_pool_create(1_c_int, pool), 'pool_create')
  call check(gpumem_pool_alloc(pool, int(size(out), c_size_t), stream, p), 'pool_alloc')
  call round_trip(p, 'pool')
  call check(gpumem_pool_get_stats(pool, stats), 'pool_get_stats')
  call expect(stats%allocs == 1 .and. stats%bytes_in_use >= int(size(out), c_size_t), &
              'pool stats: one live allocation')
  call expect(stats%struct_size == gpumem_fortran_stats_size(), 'pool stats struct_size')
  st = gpumem_pool_alloc(pool, 0_c_size_t, stream, q)
  call expect(st == GPUMEM_ERR_INVALID_ARGUMENT, 'pool_alloc(0): ' // gpumem_status_name(st))
  call expect(len(gpumem_last_error()) > 0, 'pool_alloc(0) has a message')
  st = gpumem_pool_destroy(pool)
  call expect(st == GPUMEM_ERR_BUSY, 'pool_destroy while live: ' // gpumem_status_name(st))
  call check(gpumem_pool_free(pool, p, stream), 'pool_free')
  st = gpumem_pool_free(pool, p, stream)
  call expect(st == GPUMEM_ERR_DOUBLE_FREE, 'second pool_free: ' // gpumem_status_name(st))
  call check(gpumem_pool_destroy(pool), 'pool_destroy')
  call expect(.not. c_associated(pool%handle), 'pool handle reset')

  ! Arena over devices 0 and 2: a block on each, stats, frees.
  call check(gpumem_arena_create([0_c_int, 2_c_int], arena, chunk_size=2 * MiB), 'arena_create')
  call check(gpumem_arena_alloc(arena, int(size(out), c_size_t), 2_c_int, p), 'arena_alloc 2')
  call check(gpumem_arena_alloc(arena, 3 * MiB, 0_c_int, q, alignment=4096_c_size_t), &
             'arena_alloc 0')
  call expect(mod(transfer(q, 0_c_intptr_t), 4096_c_intptr_t) == 0, 'arena alignment')
  call round_trip(p, 'arena')
  call check(gpumem_arena_get_stats(arena, stats), 'arena_get_stats')
  call expect(stats%allocs == 2, 'arena stats: two allocations')
  call expect(stats%bytes_reserved >= 5 * MiB, 'arena stats: memory on two devices')
  st = gpumem_arena_alloc(arena, MiB, 1_c_int, q)
  call expect(st == GPUMEM_ERR_INVALID_DEVICE, 'arena_alloc on a non-member: ' // &
              gpumem_status_name(st))
  call check(gpumem_arena_free(arena, p), 'arena_free')
  call check(gpumem_arena_get_stats(arena, stats), 'arena_get_stats')
  call expect(stats%frees == 1, 'arena stats: one free')
  call check(gpumem_arena_destroy(arena), 'arena_destroy')
  ! remap: memory first creates; a setting that does not exist, or a slack
  ! over 100%, is refused with its message.
  call check(gpumem_arena_create([0_c_int], arena, remap=GPUMEM_ARENA_REMAP_MEMORY, &
             slack_percent=2_c_int), 'arena_create memory first')
  call check(gpumem_arena_destroy(arena), 'arena_destroy memory first')
  st = gpumem_arena_create([0_c_int], arena, remap=7_c_int)
  call expect(st == GPUMEM_ERR_INVALID_ARGUMENT, 'arena_create remap 7: ' // &
              gpumem_status_name(st))
  call expect(index(gpumem_last_error(), 'remap 7 is not BALANCED, MEMORY or CALLS') > 0, &
              'remap 7 message: ' // gpumem_last_error())
  st = gpumem_arena_create([0_c_int], arena, slack_percent=101_c_int)
  call expect(st == GPUMEM_ERR_INVALID_ARGUMENT, 'arena_create slack 101: ' // &
              gpumem_status_name(st))

  ! Buffer: grows, keeps its pointer and bytes, refuses past max_size.
  call check(gpumem_buffer_create(0_c_int, buf, max_size=16 * MiB, &
             growth=GPUMEM_GROW_GEOMETRIC), 'buffer_create')
  call check(gpumem_buffer_resize(buf, int(size(out), c_size_t)), 'buffer_resize')
  p = gpumem_buffer_data(buf)
  call round_trip(p, 'buffer')
  call check(gpumem_buffer_resize(buf, 5 * MiB), 'buffer_resize 5 MiB')
  call expect(c_associated(p, gpumem_buffer_data(buf)), 'buffer pointer unchanged')
  call expect(gpumem_buffer_size(buf) == 5 * MiB, 'buffer size 5 MiB')
  call expect(gpumem_buffer_capacity(buf) >= 5 * MiB, 'buffer capacity')
  back = 0
  call check(gpumem_memcpy(c_loc(back), p, int(size(back), c_size_t), stream), 'memcpy back')
  call check(gpumem_stream_synchronize(stream), 'sync')
  call expect(all(back == out), 'buffer bytes kept by the growth')
  st = gpumem_buffer_resize(buf, 17 * MiB)
  call expect(st == GPUMEM_ERR_CAPACITY, 'resize past max_size: ' // gpumem_status_name(st))
  call check(gpumem_buffer_get_stats(buf, stats), 'buffer_get_stats')
  call expect(stats%bytes_in_use == 5 * MiB, 'buffer stats: size')
  call expect(stats%allocs >= 2, 'buffer stats: two growths at least')
  bytes = stats%bytes_reserved
  call expect(bytes == gpumem_buffer_capacity(buf), 'buffer stats: capacity')
  call check(gpumem_buffer_destroy(buf), 'buffer_destroy')

  call check(gpumem_stream_destroy(stream), 'stream_destroy')
  call check(gpumem_finalize(), 'finalize')
  call expect(gpumem_backend_name() == 'none', 'no backend after finalize')

  if (failures > 0) then
    print '(a, i0, a)', 'FAIL: ', failures, ' check(s) failed'
    error stop 1
  end if
  print '(a)', 'ok'

contains

  subroutine expect(cond, what)
    logical, intent(in) :: cond
    character(*), intent(in) :: what
    if (.not. cond) then
      print '(a)', 'FAIL: ' // what
      failures = failures + 1
    end if
  end subroutine expect

  subroutine check(status, what)
    integer(c_int), intent(in) :: status
    character(*), intent(in) :: what
    if (status /= GPUMEM_OK) then
      print '(a)', 'FAIL: ' // what // ': ' // gpumem_status_name(status) // ': ' // &
        gpumem_last_error()
      error stop 1
    end if
  end subroutine check

  ! Copy `out` to device memory at ptr, memset a byte, copy it back, compare.
  subroutine round_trip(ptr, what)
    type(c_ptr), intent(in) :: ptr
    character(*), intent(in) :: what
    integer(c_size_t) :: n
    n = int(size(out), c_size_t)
    back = 0
    call check(gpumem_memcpy(ptr, c_loc(out), n, stream), what // ' memcpy in')
    call check(gpumem_memset(ptr, 99_c_int, 1_c_size_t, stream), what // ' memset')
    call check(gpumem_memcpy(c_loc(back), ptr, n, stream), what // ' memcpy out')
    call check(gpumem_stream_synchronize(stream), what // ' sync')
    call expect(back(1) == 99, what // ': memset byte read back')
    call expect(all(back(2:) == out(2:)), what // ': bytes read back')
    call check(gpumem_memcpy(ptr, c_loc(out), 1_c_size_t, stream), what // ' restore')
    call check(gpumem_stream_synchronize(stream), what // ' sync')
  end subroutine round_trip

end program test_fortran
