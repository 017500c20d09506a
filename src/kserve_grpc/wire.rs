//! One gRPC message on the wire: the 5-byte prefix of a length-prefixed
//! message, and the one field the gateway may rewrite (the model's name)
//! spliced in place, every other byte kept.

use bytes::{BufMut, Bytes, BytesMut};

/// SPEC: Length-Prefixed-Message → Compressed-Flag Message-Length Message;
/// Compressed-Flag is 1 byte, Message-Length 4 bytes big-endian.
pub const MESSAGE_PREFIX: usize = 5;

/// Why a request body is not one uncompressed gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its prefix, or than the length the prefix declares.
    #[error("the body is not a whole length-prefixed gRPC message")]
    Truncated,
    /// More bytes follow the message: a unary call carries one.
    #[error("a unary call carries one message; the body holds more bytes")]
    Trailing,
    /// The compressed flag is set (the gateway must read the message).
    #[error(
        "compressed gRPC messages are not supported; send them uncompressed (grpc-encoding identity)"
    )]
    Compressed,
    /// A field uses a wire type protobuf no longer has (groups) or none.
    #[error("the message is not valid protobuf")]
    Protobuf,
}

/// The message of a body that holds exactly one uncompressed message.
pub fn unframe(body: &[u8]) -> Result<&[u8], FrameError> {
    let (prefix, rest) = body
        .split_first_chunk::<MESSAGE_PREFIX>()
        .ok_or(FrameError::Truncated)?;
    if prefix[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated),
        std::cmp::Ordering::Greater => Err(FrameError::Trailing),
        std::cmp::Ordering::Equal => Ok(rest),
    }
}

/// `message` as one uncompressed length-prefixed message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(MESSAGE_PREFIX + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message);
    out.freeze()
}

/// The model's name in every request message that names one (field 1,
/// `model_name` or `name`).
const NAME_FIELD: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;

/// `message` with its field 1 (the model's name in `ModelInferRequest`,
/// `ModelMetadataRequest` and `ModelReadyRequest`) set to `name`: each
/// occurrence is replaced where it stands, every other byte is kept (no
/// re-encoding of the tensors or of the parameters' maps).
pub fn replace_model_name(message: &[u8], name: &str) -> Result<Bytes, FrameError> {
    let mut out = BytesMut::with_capacity(message.len() + name.len() + 10);
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        let key = prost::encoding::decode_varint(&mut rest).map_err(|_| FrameError::Protobuf)?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut rest).map_err(|_| FrameError::Protobuf)?;
            }
            1 => rest = rest.get(8..).ok_or(FrameError::Protobuf)?,
            5 => rest = rest.get(4..).ok_or(FrameError::Protobuf)?,
            LENGTH_DELIMITED => {
                let len =
                    prost::encoding::decode_varint(&mut rest).map_err(|_| FrameError::Protobuf)?;
                let len = usize::try_from(len).map_err(|_| FrameError::Protobuf)?;
                rest = rest.get(len..).ok_or(FrameError::Protobuf)?;
            }
            _ => return Err(FrameError::Protobuf),
        }
        if field == NAME_FIELD && wire_type == LENGTH_DELIMITED {
            prost::encoding::encode_varint(NAME_FIELD << 3 | LENGTH_DELIMITED, &mut out);
            prost::encoding::encode_varint(name.len() as u64, &mut out);
            out.extend_from_slice(name.as_bytes());
        } else {
            out.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kserve_grpc::messages::{
        InferParameter, ModelInferRequest, infer_parameter::ParameterChoice,
        model_infer_request::InferInputTensor,
    };
    use prost::Message;

    #[test]
    fn frames_round_trip_and_bad_frames_are_refused() {
        let framed = frame(b"abc");
        assert_eq!(&framed[..], b"\0\0\0\0\x03abc");
        assert_eq!(unframe(&framed), Ok(&b"abc"[..]));
        assert_eq!(unframe(b"\0\0\0"), Err(FrameError::Truncated));
        assert_eq!(unframe(b"\0\0\0\0\x04abc"), Err(FrameError::Truncated));
        assert_eq!(unframe(b"\0\0\0\0\x02abc"), Err(FrameError::Trailing));
        assert_eq!(unframe(b"\x01\0\0\0\x03abc"), Err(FrameError::Compressed));
        assert_eq!(unframe(&frame(b"")), Ok(&b""[..]));
    }

    #[test]
    fn the_model_name_is_replaced_and_every_other_byte_kept() {
        let mut request = ModelInferRequest {
            model_name: "credit".into(),
            model_version: "2".into(),
            id: "r1".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                ..Default::default()
            }],
            raw_input_contents: vec![vec![0, 0, 128, 63, 0, 0, 0, 64]],
            ..Default::default()
        };
        request.parameters.insert(
            "p".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(-3)),
            },
        );
        let bytes = request.encode_to_vec();
        let replaced = replace_model_name(&bytes, "credit-upstream-7").unwrap();
        let decoded = ModelInferRequest::decode(&replaced[..]).unwrap();
        assert_eq!(decoded.model_name, "credit-upstream-7");
        assert_eq!(
            decoded,
            ModelInferRequest {
                model_name: "credit-upstream-7".into(),
                ..request.clone()
            }
        );
        // Field 1 comes first as prost writes it: the rest is byte-identical.
        let old_field = 2 + "credit".len();
        let new_field = 2 + "credit-upstream-7".len();
        assert_eq!(&replaced[new_field..], &bytes[old_field..]);
        assert_eq!(
            replace_model_name(&[0x0b], "x"),
            Err(FrameError::Protobuf),
            "a group's start is refused"
        );
        assert_eq!(
            replace_model_name(&[0x0a, 5, b'a'], "x"),
            Err(FrameError::Protobuf)
        );
    }
}
