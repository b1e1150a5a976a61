//! NumPy files: `load(path[, name])` and `save(path, x)` for `.npy` (one array) and `.npz`
//! (a zip archive of `.npy` members, as `numpy.savez` and `numpy.savez_compressed` write).
//!
//! Reading accepts float64, float32, integer and bool arrays of either byte order, in C or
//! Fortran order (Fortran-order data is transposed into AD's row-major layout), and gives
//! `f64` arrays. Writing gives little-endian float64 in C order, byte for byte what
//! `numpy.save` writes for the same array; `.npz` members are stored uncompressed, named
//! `arr_0`, `arr_1`, ... as `numpy.savez(path, a, b)` names them.
//!
//! The header is checked before npyz reads it: its length, its nesting, and that the
//! shape fits the memory budget, so a damaged or hostile file is a located error, never
//! a panic or an allocation failure.

use ad_ir::lower::io_effects::{np_kind, FileShapes, NpKind};
use ad_ir::lower::spec::flatten;
use ad_ir::lower::value::LVal;
use ad_ir::{Array, Shape};
use npyz::{DType, TypeChar};
use std::io::{Cursor, Read};

/// NumPy's magic string at the start of every `.npy` file.
const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers longer than this are refused (NumPy refuses those over 10000 bytes by default).
const MAX_HEADER: usize = 65_536;

type Result<T> = std::result::Result<T, String>;

/// What a file starts with.
fn sniff(path: &str, bytes: &[u8]) -> Result<NpKind> {
    if bytes.starts_with(MAGIC) {
        Ok(NpKind::Npy)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Ok(NpKind::Npz)
    } else {
        Err(format!(
            "`{path}` is not a NumPy file: it starts with neither the .npy magic string nor a zip header"
        ))
    }
}

fn open(path: &str) -> Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(path)
        .map_err(|e| format!("cannot read `{path}`: {}", crate::session::io_reason(&e)))?;
    Ok(std::io::BufReader::new(f))
}

fn read_err(path: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("cannot read `{path}`: {}", crate::session::io_reason(&e))
}

/// Reads what `load(path[, name])` gives.
pub fn load(path: &str, name: Option<&str>) -> Result<LVal> {
    let mut r = open(path)?;
    let mut head = [0u8; 6];
    let n = read_full(&mut r, &mut head).map_err(read_err(path))?;
    let kind = sniff(path, &head[..n])?;
    let r = Cursor::new(head[..n].to_vec()).chain(r);
    match kind {
        NpKind::Npy => {
            if let Some(member) = name {
                return Err(format!(
                    "`{path}` is an .npy file, which holds one array, not one named `{member}`"
                ));
            }
            Ok(LVal::array(read_npy(path, r)?))
        }
        NpKind::Npz => {
            let mut zip = npz_archive(path)?;
            match name {
                Some(member) => {
                    let i = member_index(path, &mut zip, member)?;
                    let entry = zip.by_index(i).map_err(|e| damaged_zip(path, e))?;
                    Ok(LVal::array(read_npy(&format!("{path}:{member}"), entry)?))
                }
                None => {
                    let mut arrays = Vec::new();
                    for (i, member) in members(&mut zip) {
                        let entry = zip.by_index(i).map_err(|e| damaged_zip(path, e))?;
                        arrays.push(LVal::array(read_npy(&format!("{path}:{member}"), entry)?));
                    }
                    Ok(LVal::Tuple(arrays.into()))
                }
            }
        }
    }
}

/// The shapes `load(path[, name])` would give, from the headers alone (`ad check`).
pub fn shapes(path: &str, name: Option<&str>) -> Result<FileShapes> {
    let mut r = open(path)?;
    let mut head = [0u8; 6];
    let n = read_full(&mut r, &mut head).map_err(read_err(path))?;
    let kind = sniff(path, &head[..n])?;
    let mut r = Cursor::new(head[..n].to_vec()).chain(r);
    match kind {
        NpKind::Npy => Ok(FileShapes::Array(header(path, &mut r)?.shape)),
        NpKind::Npz => {
            let mut zip = npz_archive(path)?;
            let one = |zip: &mut zip::ZipArchive<_>, i: usize, member: &str| -> Result<Shape> {
                let mut entry = zip.by_index(i).map_err(|e| damaged_zip(path, e))?;
                Ok(header(&format!("{path}:{member}"), &mut entry)?.shape)
            };
            match name {
                Some(member) => {
                    let i = member_index(path, &mut zip, member)?;
                    Ok(FileShapes::Array(one(&mut zip, i, member)?))
                }
                None => {
                    let mut v = Vec::new();
                    for (i, member) in members(&mut zip) {
                        v.push(one(&mut zip, i, &member)?);
                    }
                    Ok(FileShapes::Tuple(v))
                }
            }
        }
    }
}

/// Writes `save(path, x)`.
pub fn save(path: &str, v: &LVal) -> Result<()> {
    let bytes = match np_kind(path) {
        Some(NpKind::Npz) => {
            let items: Vec<LVal> = match v {
                LVal::Tuple(t) => t.to_vec(),
                x => vec![x.clone()],
            };
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            for (i, x) in items.iter().enumerate() {
                let npy = npy_bytes(&array_of(x))?;
                // Stored, as `numpy.savez` does; members over 4 GiB need zip64.
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .large_file(npy.len() as u64 >= u32::MAX as u64);
                zip.start_file(format!("arr_{i}.npy"), options)
                    .map_err(|e| format!("cannot write `{path}`: {e}"))?;
                std::io::Write::write_all(&mut zip, &npy)
                    .map_err(|e| format!("cannot write `{path}`: {e}"))?;
            }
            zip.finish().map_err(|e| format!("cannot write `{path}`: {e}"))?.into_inner()
        }
        _ => npy_bytes(&array_of(v))?,
    };
    std::fs::write(path, bytes)
        .map_err(|e| format!("cannot write `{path}`: {}", crate::session::io_reason(&e)))
}

fn array_of(v: &LVal) -> Array {
    let mut leaves = Vec::new();
    flatten(v, &mut leaves);
    leaves.into_iter().next().unwrap_or_else(|| Array::scalar(f64::NAN))
}

/// An array as `numpy.save` writes it: format 1.0, `<f8`, C order, the header padded with
/// spaces so that the data starts at a multiple of 64 bytes. (npyz's writer spells a shape
/// `(2, 3, )` where NumPy writes `(2, 3)`; both read the same, but NumPy's bytes are the
/// ones to match, so the header is written here.)
pub fn npy_bytes(a: &Array) -> Result<Vec<u8>> {
    let dims: Vec<String> = a.shape().dims().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let len =
        u16::try_from(header.len()).map_err(|_| "internal error: an .npy header past 64 KiB".to_string())?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 8 * a.data().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in a.data() {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An `.npy` header, checked: the bytes read (to hand to npyz with the data), the shape
/// (within AD's ranks and the memory budget) and the order.
struct Header {
    bytes: Vec<u8>,
    shape: Shape,
    dims: Vec<usize>,
}

fn header(what: &str, r: &mut impl Read) -> Result<Header> {
    let bad = |why: &str| format!("`{what}` is not a valid .npy file: {why}");
    let mut pre = [0u8; 10];
    let n = read_full(r, &mut pre).map_err(|e| bad(&e.to_string()))?;
    if n < 8 || !pre.starts_with(MAGIC) {
        return Err(bad("it does not start with the .npy magic string"));
    }
    if n < 10 {
        return Err(bad("the file ends inside its header"));
    }
    let mut bytes = pre.to_vec();
    let len = match pre[6] {
        1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            if read_full(r, &mut more).map_err(|e| bad(&e.to_string()))? < 2 {
                return Err(bad("the file ends inside its header"));
            }
            bytes.extend_from_slice(&more);
            u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize
        }
        v => return Err(bad(&format!("unknown format version {v}"))),
    };
    if len > MAX_HEADER {
        return Err(bad(&format!("its header is {len} bytes long (at most {MAX_HEADER} are read)")));
    }
    let mut text = vec![0u8; len];
    if read_full(r, &mut text).map_err(|e| bad(&e.to_string()))? < len {
        return Err(bad("the file ends inside its header"));
    }
    bytes.extend_from_slice(&text);
    let dims = shape_in_header(&text).map_err(|why| bad(&why))?;
    let shape = ad_ir::prim::checked_shape(&dims).map_err(|m| {
        let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        format!("`{what}` holds an array of shape [{}]: {m}", dims.join(", "))
    })?;
    Ok(Header { bytes, shape, dims })
}

/// The `'shape'` of a header's dictionary, each dimension checked to be a count.
fn shape_in_header(text: &[u8]) -> std::result::Result<Vec<usize>, String> {
    // Nesting is bounded before the recursive parser sees the text.
    let mut depth = 0usize;
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 16 {
            return Err("its header nests too deeply".into());
        }
    }
    let text = std::str::from_utf8(text).map_err(|_| "its header is not text".to_string())?;
    let value: py_literal::Value =
        text.trim_end().parse().map_err(|_| "its header is not a Python literal".to_string())?;
    let py_literal::Value::Dict(items) = value else {
        return Err("its header is not a dictionary".into());
    };
    let shape = items
        .iter()
        .find(|(k, _)| matches!(k, py_literal::Value::String(s) if s == "shape"))
        .map(|(_, v)| v)
        .ok_or("its header has no shape")?;
    let py_literal::Value::Tuple(dims) = shape else {
        return Err("its shape is not a tuple".into());
    };
    dims.iter()
        .map(|d| match d {
            py_literal::Value::Integer(n) => {
                usize::try_from(n).map_err(|_| format!("its shape has the dimension {n}"))
            }
            _ => Err("its shape holds something other than integers".into()),
        })
        .collect()
}

fn read_npy(what: &str, mut r: impl Read) -> Result<Array> {
    let h = header(what, &mut r)?;
    let npy = npyz::NpyFile::new(Cursor::new(h.bytes).chain(r))
        .map_err(|e| format!("`{what}` is not a valid .npy file: {e}"))?;
    let fortran = npy.order() == npyz::Order::Fortran;
    let dtype = npy.dtype();
    let unsupported = || {
        format!(
            "`{what}` holds values of type `{}`; AD reads float64, float32, integer and bool arrays",
            dtype.descr().trim_matches('\'')
        )
    };
    let DType::Plain(ts) = &dtype else { return Err(unsupported()) };
    let damaged = |e: std::io::Error| format!("`{what}` is truncated or damaged: {e}");
    let data: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(damaged)?,
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 1) => npy.into_vec::<i8>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 2) => npy.into_vec::<i16>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 8) => npy.into_vec::<i64>().map_err(damaged)?.into_iter().map(|x| x as f64).collect(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 2) => npy.into_vec::<u16>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 4) => npy.into_vec::<u32>().map_err(damaged)?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 8) => {
            npy.into_vec::<u64>().map_err(damaged)?.into_iter().map(|x| x as f64).collect()
        }
        (TypeChar::Bool, 1) => {
            npy.into_vec::<bool>().map_err(damaged)?.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()
        }
        _ => return Err(unsupported()),
    };
    if data.len() != h.shape.size() {
        return Err(format!("`{what}` is truncated or damaged: its data does not match its shape"));
    }
    let data = if fortran { from_fortran(&h.dims, data) } else { data };
    Ok(Array::new(h.shape, data))
}

/// Column-major data of shape `dims` laid out row-major (the axes' order reversed).
fn from_fortran(dims: &[usize], data: Vec<f64>) -> Vec<f64> {
    if dims.len() < 2 {
        return data;
    }
    let mut out = vec![0.0; data.len()];
    let mut index = vec![0usize; dims.len()];
    // Fortran strides: the first axis is contiguous.
    let mut strides = vec![1usize; dims.len()];
    for k in 1..dims.len() {
        strides[k] = strides[k - 1] * dims[k - 1];
    }
    for o in out.iter_mut() {
        let src: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        *o = data[src];
        // The next row-major index: the last axis moves fastest.
        for k in (0..dims.len()).rev() {
            index[k] += 1;
            if index[k] < dims[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

fn npz_archive(path: &str) -> Result<zip::ZipArchive<std::io::BufReader<std::fs::File>>> {
    zip::ZipArchive::new(open(path)?).map_err(|e| damaged_zip(path, e))
}

fn damaged_zip(path: &str, e: zip::result::ZipError) -> String {
    format!("`{path}` is not a valid .npz file: {e}")
}

/// The `.npy` members of an archive in archive order: (index, array name).
fn members<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>) -> Vec<(usize, String)> {
    (0..zip.len())
        .filter_map(|i| {
            let name = zip.name_for_index(i)?;
            let array = name.strip_suffix(".npy")?;
            Some((i, array.to_string()))
        })
        .collect()
}

fn member_index<R: Read + std::io::Seek>(
    path: &str,
    zip: &mut zip::ZipArchive<R>,
    member: &str,
) -> Result<usize> {
    let all = members(zip);
    let wanted = member.strip_suffix(".npy").unwrap_or(member);
    all.iter().find(|(_, n)| n == wanted).map(|(i, _)| *i).ok_or_else(|| {
        let names: Vec<String> = all.iter().map(|(_, n)| format!("`{n}`")).collect();
        let has = if names.is_empty() { "no arrays".to_string() } else { names.join(", ") };
        format!("`{path}` has no array named `{member}`; it has {has}")
    })
}
