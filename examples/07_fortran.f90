! 07_fortran.f90: libgpumem from Fortran (use gpumem).
!
! Course topic "GPU memory in Fortran codes". Many HPC codes are Fortran,
! and their GPU memory is either the compiler's (OpenACC, CUDA Fortran) or
! C's through ISO_C_BINDING. The gpumem module gives the second kind the
! library's allocators with Fortran types: every call returns a status
! (GPUMEM_OK or an error code), gpumem_last_error() returns the library's
! sentence as a Fortran string, and handles are typed (a pool is not an
! arena).
!
! The program picks a device, then uses the three allocators in turn:
! - a stream-ordered pool: scratch allocated and freed in the order of a
!   stream, reused without a driver call;
! - an arena: one range of virtual addresses that grows in chunks and
!   sub-allocates blocks from them;
! - a growable buffer: a device array whose address never changes while it
!   grows, like a Fortran allocatable that could be extended in place.
! Device memory is not host memory on a GPU: a Fortran array never points
! at it. Data moves with gpumem_memcpy between c_loc(array) and the device
! pointer, on a stream, and the stream is synchronized before the host
! reads. The same code is correct on the host backend, which enforces those
! rules. A kernel (CUDA Fortran, OpenACC deviceptr, or C) would take the
! device pointer as it is.
!
! Run:  GPUMEM_BACKEND=host build/dev/examples/07_fortran   (a GPU: drop GPUMEM_BACKEND)
program example_07_fortran
  use, intrinsic :: iso_c_binding
  use gpumem
  implicit none

  integer(c_size_t), parameter :: MiB = 1048576_c_size_t
  integer(c_int), parameter :: n = 100000
  integer(c_int) :: st, count, device
  character(:), allocatable :: reason
  type(gpumem_stream) :: stream
  type(gpumem_pool) :: pool
  type(gpumem_arena) :: arena
  type(gpumem_buffer) :: vec
  type(gpumem_stats) :: stats
  type(c_ptr) :: scratch, block, data
  real(c_double), target :: x(n), y(n)
  integer(c_size_t) :: bytes
  integer :: i, grow

  ! No device (the CUDA backend without a GPU): say why and exit 2.
  st = gpumem_device_count(count)
  if (st == GPUMEM_ERR_NO_DEVICE) then
    print '(a)', '07_fortran: ' // gpumem_last_error()
    print '(a)', '  (run with GPUMEM_BACKEND=host to use emulated devices)'
    stop 2
  end if
  call check(st, 'gpumem_device_count')

  ! Rank 0's device (an MPI code passes its node-local rank here), one that
  ! has pools and VMM.
  call check(gpumem_device_select(device, local_rank=0_c_int, &
             required_caps=ior(GPUMEM_CAP_POOLS, GPUMEM_CAP_VMM), reason=reason), &
             'gpumem_device_select')
  print '(i0, a, a, a)', count, ' device(s) on the ', gpumem_backend_name(), ' backend'
  print '(a)', reason
  deallocate (reason) ! (the main program's variables live until exit: LeakSanitizer would count it)
  call check(gpumem_stream_create(device, stream), 'gpumem_stream_create')
  bytes = int(n, c_size_t) * c_sizeof(x(1))
  do i = 1, n
    x(i) = real(i, c_double) * 0.5_c_double
  end do

  ! 1. Pool: scratch on the stream, x copied in and back, freed on the stream.
  call check(gpumem_pool_create(device, pool), 'gpumem_pool_create')
  call check(gpumem_pool_alloc(pool, bytes, stream, scratch), 'gpumem_pool_alloc')
  call check(gpumem_memcpy(scratch, c_loc(x), bytes, stream), 'gpumem_memcpy to device')
  call check(gpumem_memcpy(c_loc(y), scratch, bytes, stream), 'gpumem_memcpy to host')
  call check(gpumem_stream_synchronize(stream), 'gpumem_stream_synchronize')
  call require(all(y == x), 'pool: y == x after the round trip')
  call check(gpumem_pool_get_stats(pool, stats), 'gpumem_pool_get_stats')
  print '(a, f6.2, a, f6.2, a)', 'pool:   ', real(stats%bytes_in_use) / real(MiB), &
    ' MiB in use, ', real(stats%bytes_reserved) / real(MiB), ' MiB reserved'
  call check(gpumem_pool_free(pool, scratch, stream), 'gpumem_pool_free')

  ! 2. Arena on this device: a block, zeroed with memset, read back.
  call check(gpumem_arena_create([device], arena), 'gpumem_arena_create')
  call check(gpumem_arena_alloc(arena, bytes, device, block), 'gpumem_arena_alloc')
  call check(gpumem_memset(block, 0_c_int, bytes, stream), 'gpumem_memset')
  call check(gpumem_memcpy(c_loc(y), block, bytes, stream), 'gpumem_memcpy to host')
  call check(gpumem_stream_synchronize(stream), 'gpumem_stream_synchronize')
  call require(all(y == 0.0_c_double), 'arena: the block reads back as zeros')
  call check(gpumem_arena_get_stats(arena, stats), 'gpumem_arena_get_stats')
  print '(a, f6.2, a, f6.2, a)', 'arena:  ', real(stats%bytes_in_use) / real(MiB), &
    ' MiB in use, ', real(stats%bytes_reserved) / real(MiB), ' MiB mapped'
  call check(gpumem_arena_free(arena, block), 'gpumem_arena_free')

  ! 3. Buffer: append x four times; the pointer stays, every copy survives.
  call check(gpumem_buffer_create(device, vec, max_size=64 * MiB, growth=GPUMEM_GROW_GEOMETRIC), &
             'gpumem_buffer_create')
  data = gpumem_buffer_data(vec)
  do grow = 0, 3
    call check(gpumem_buffer_resize(vec, (grow + 1) * bytes), 'gpumem_buffer_resize')
    call require(c_associated(data, gpumem_buffer_data(vec)), 'buffer: the pointer never moves')
    call check(gpumem_memcpy(offset(data, grow * bytes), c_loc(x), bytes, stream), &
               'gpumem_memcpy append')
  end do
  do grow = 0, 3
    y = 0
    call check(gpumem_memcpy(c_loc(y), offset(data, grow * bytes), bytes, stream), &
               'gpumem_memcpy to host')
    call check(gpumem_stream_synchronize(stream), 'gpumem_stream_synchronize')
    call require(all(y == x), 'buffer: every appended copy reads back')
  end do
  call check(gpumem_buffer_get_stats(vec, stats), 'gpumem_buffer_get_stats')
  print '(a, f6.2, a, f6.2, a, i0, a)', 'buffer: ', real(stats%bytes_in_use) / real(MiB), &
    ' MiB in use, ', real(stats%bytes_reserved) / real(MiB), ' MiB mapped in ', stats%allocs, &
    ' growths'

  ! Everything back, in reverse; finalize says BUSY if anything was left.
  call check(gpumem_buffer_destroy(vec), 'gpumem_buffer_destroy')
  call check(gpumem_arena_destroy(arena), 'gpumem_arena_destroy')
  call check(gpumem_pool_destroy(pool), 'gpumem_pool_destroy')
  call check(gpumem_stream_destroy(stream), 'gpumem_stream_destroy')
  call check(gpumem_finalize(), 'gpumem_finalize')
  print '(a)', 'ok'

contains

  ! Stop with the call, its status and the library's sentence.
  subroutine check(status, call_name)
    integer(c_int), intent(in) :: status
    character(*), intent(in) :: call_name
    if (status /= GPUMEM_OK) then
      print '(a)', '07_fortran: ' // call_name // ' failed: ' // gpumem_status_name(status)
      print '(a)', '  ' // gpumem_last_error()
      error stop 1
    end if
  end subroutine check

  subroutine require(cond, what)
    logical, intent(in) :: cond
    character(*), intent(in) :: what
    if (.not. cond) then
      print '(a)', '07_fortran: check failed: ' // what
      error stop 1
    end if
  end subroutine require

  ! The device address `bytes` past p (pointer arithmetic through an integer).
  type(c_ptr) function offset(p, bytes)
    type(c_ptr), intent(in) :: p
    integer(c_size_t), intent(in) :: bytes
    offset = transfer(transfer(p, 0_c_intptr_t) + int(bytes, c_intptr_t), c_null_ptr)
  end function offset

end program example_07_fortran
