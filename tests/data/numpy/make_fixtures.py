"""Writes the NumPy fixtures that AD's tests read (tests/numpy_files.rs).

Run it from this directory with NumPy installed (any 1.x or 2.x):

    python3 make_fixtures.py

The files are small and committed; the tests compare what AD reads with the values
written here, and what AD writes with the bytes NumPy writes for the same arrays.
"""

import numpy as np

m = np.arange(6, dtype=np.float64).reshape(2, 3) * 0.5 - 1.0  # [[-1, -0.5, 0], [0.5, 1, 1.5]]

# Float64, C order: a scalar, a vector, a matrix, an empty matrix.
np.save("f64_scalar.npy", np.float64(2.5))
np.save("f64_vector.npy", np.array([1.0, -2.5, 3.25, 1e-300, np.inf]))
np.save("f64_matrix.npy", m)
np.save("f64_empty.npy", np.zeros((0, 3)))
# The same matrix in Fortran order, big-endian, and as float32.
np.save("f64_fortran.npy", np.asfortranarray(m))
np.save("f64_big_endian.npy", m.astype(">f8"))
np.save("f32_matrix.npy", m.astype(np.float32))
# Integers and booleans.
np.save("i64_vector.npy", np.array([-3, 0, 7, 2**40], dtype=np.int64))
np.save("i32_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)))
np.save("u8_vector.npy", np.array([0, 1, 255], dtype=np.uint8))
np.save("i16_vector.npy", np.array([-32768, 5], dtype=np.int16))
np.save("bool_vector.npy", np.array([True, False, True]))
# Rank 3, in both orders (AD reads them where its arrays have that rank); rank 9, past
# any rank AD has.
t = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
np.save("rank3.npy", t)
np.save("rank3_fortran.npy", np.asfortranarray(t))
np.save("rank9.npy", np.zeros((1,) * 9))
# What AD cannot read: complex numbers, strings.
np.save("complex.npy", np.array([1 + 2j]))
np.save("strings.npy", np.array(["a", "bc"]))
# Archives: positional names (arr_0, arr_1), keyword names, compressed.
np.savez("two.npz", m, np.array([1.0, 2.0]))
np.savez("named.npz", weights=m, bias=np.array([0.5, -0.5, 1.0]))
np.savez_compressed("compressed.npz", m, np.arange(4, dtype=np.int64))
