// kernels/onnx/graph.ts — a small typed builder of ONNX graphs over onnx-proto's generated
// messages, and the one place a model is encoded.
//
// Promises: every value name in a graph is unique (a clash is an error naming it, never a silently
// rewired graph); tensors are stored as little-endian raw_data, so a weight's bytes are its float32
// bits; small constants (axes, shapes, scalars) are stored once however many nodes read them; the
// bytes come only from onnx.ModelProto.encode, never from hand-written protobuf.
import { endianness } from 'node:os';

import { onnx } from 'onnx-proto';

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

/** A float attribute; a plain number is an int, an array of numbers a list of ints. */
export class FloatAttribute {
  constructor(readonly value: number) {}
}
export const float = (value: number) => new FloatAttribute(value);

export type AttributeValue = number | readonly number[] | FloatAttribute;

/** One dimension of a graph input or output: a size, or a symbolic name such as "batch". */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  type: 'float32' | 'int64';
  dims: readonly Dim[];
}

const ELEMENT_TYPES = { float32: DataType.FLOAT, int64: DataType.INT64 } as const;

function attribute(name: string, value: AttributeValue): onnx.IAttributeProto {
  if (value instanceof FloatAttribute) return { name, type: AttributeType.FLOAT, f: value.value };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name} = ${value}: a float attribute needs float(...)`);
    return { name, type: AttributeType.INT, i: value };
  }
  return { name, type: AttributeType.INTS, ints: [...value] };
}

function valueInfo({ name, type, dims }: ValueInfo): onnx.IValueInfoProto {
  const shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: { elemType: ELEMENT_TYPES[type], shape } } };
}

/** The bytes of a typed array as they are laid out in memory: ONNX raw_data is little-endian. */
function rawBytes(data: Float32Array | Uint8Array | BigInt64Array): Uint8Array {
  if (endianness() !== 'LE') throw new Error('ONNX raw_data is little-endian; this host is big-endian');
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  readonly #nodes: onnx.INodeProto[] = [];
  readonly #initializers: onnx.ITensorProto[] = [];
  readonly #names = new Set<string>();
  readonly #constants = new Map<string, string>();
  #counter = 0;

  /** Reserve `name` for one value of the graph. */
  #claim(name: string): string {
    if (this.#names.has(name)) throw new Error(`ONNX graph: the value name "${name}" is used twice`);
    this.#names.add(name);
    return name;
  }

  /** A name no value has yet, from `hint`; not reserved until claimed. */
  #unused(hint: string): string {
    let name: string;
    do name = `${hint}_${this.#counter++}`;
    while (this.#names.has(name));
    return name;
  }

  #tensor(name: string, dims: readonly number[], dataType: number, bytes: Uint8Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    const width = dataType === DataType.FLOAT ? 4 : dataType === DataType.INT64 ? 8 : 1;
    if (bytes.byteLength !== expected * width) {
      throw new Error(`ONNX initializer "${name}": [${dims.join(', ')}] needs ${expected} elements, got ${bytes.byteLength / width}`);
    }
    this.#initializers.push({ name: this.#claim(name), dims: [...dims], dataType, rawData: bytes });
    return name;
  }

  /** A float32 initializer, row-major `dims`. Its bytes are referenced, not copied, until encoding. */
  float32(name: string, dims: readonly number[], data: Float32Array): string {
    return this.#tensor(name, dims, DataType.FLOAT, rawBytes(data));
  }

  /** A uint8 initializer (quantized codes and zero points). */
  uint8(name: string, dims: readonly number[], data: Uint8Array): string {
    return this.#tensor(name, dims, DataType.UINT8, data);
  }

  /** An int64 initializer, row-major `dims` (indices). */
  int64(name: string, dims: readonly number[], data: BigInt64Array): string {
    return this.#tensor(name, dims, DataType.INT64, rawBytes(data));
  }

  /** A bool initializer; `data` holds 0 or 1 per element. */
  bool(name: string, dims: readonly number[], data: Uint8Array): string {
    return this.#tensor(name, dims, DataType.BOOL, data);
  }

  /** A 1-D int64 constant (axes, shapes, slice bounds), shared by every node that uses the same values. */
  int64s(values: readonly number[]): string {
    return this.#shared(`i64[${values.join(',')}]`, 'const_i64', (name) =>
      this.#tensor(name, [values.length], DataType.INT64, rawBytes(BigInt64Array.from(values, BigInt))),
    );
  }

  /** A float32 scalar constant, shared like int64s; `value` is rounded to float32. */
  scalar(value: number): string {
    return this.#shared(`f32:${Object.is(value, -0) ? '-0' : value}`, 'const_f32', (name) =>
      this.#tensor(name, [], DataType.FLOAT, rawBytes(new Float32Array([value]))),
    );
  }

  #shared(key: string, hint: string, make: (name: string) => string): string {
    let name = this.#constants.get(key);
    if (name === undefined) {
      name = make(this.#unused(hint));
      this.#constants.set(key, name);
    }
    return name;
  }

  /** A node of the default domain with one output; returns the output's name (`name`, or a fresh one). */
  op(type: string, inputs: readonly string[], attributes: Record<string, AttributeValue> = {}, name?: string): string {
    return this.#node(type, inputs, [this.#claim(name ?? this.#unused(type))], attributes)[0];
  }

  /** A node with `outputs` outputs (Split); returns their fresh names. */
  ops(type: string, inputs: readonly string[], outputs: number, attributes: Record<string, AttributeValue> = {}): string[] {
    return this.#node(type, inputs, Array.from({ length: outputs }, () => this.#claim(this.#unused(type))), attributes);
  }

  #node(type: string, inputs: readonly string[], outputs: string[], attributes: Record<string, AttributeValue>): string[] {
    for (const input of inputs) if (!this.#names.has(input)) throw new Error(`ONNX graph: ${type} reads "${input}", which nothing defines`);
    this.#nodes.push({
      opType: type,
      name: outputs[0],
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    });
    return outputs;
  }

  /** Declare a graph input; returns its name. */
  input(info: ValueInfo): string {
    return this.#claim(info.name);
  }

  /** The finished graph, reading `inputs` and producing `outputs` (each already the output of a node). */
  graph(name: string, inputs: readonly ValueInfo[], outputs: readonly ValueInfo[]): onnx.IGraphProto {
    for (const o of outputs) if (!this.#names.has(o.name)) throw new Error(`ONNX graph: output "${o.name}" is produced by no node`);
    return {
      name,
      node: this.#nodes,
      initializer: this.#initializers,
      input: inputs.map(valueInfo),
      output: outputs.map(valueInfo),
    };
  }
}

export interface ModelOptions {
  graph: onnx.IGraphProto;
  irVersion: number;
  /** Opset of the default ONNX domain. */
  opset: number;
  producer: string;
  metadata: Record<string, string>;
}

/** Encode a model with onnx-proto (the one encoder: no hand-written protobuf). */
export function encodeModel(options: ModelOptions): Uint8Array {
  const model: onnx.IModelProto = {
    irVersion: options.irVersion,
    opsetImport: [{ domain: '', version: options.opset }],
    producerName: options.producer,
    graph: options.graph,
    metadataProps: Object.entries(options.metadata).map(([key, value]) => ({ key, value })),
  };
  return onnx.ModelProto.encode(model).finish();
}
