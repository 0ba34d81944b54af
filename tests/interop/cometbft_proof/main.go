// Command cometbft_proof cross-checks reco2's Python Merkle code against
// CometBFT's own crypto/merkle package.
//
// It reads one JSON request from stdin and dispatches on "mode":
//
//	{"mode": "verify", "root": HEX, "keypath": STR, "value": BASE64,
//	 "proof_ops": {"ops": [{"type": ..., "key": BASE64, "data": BASE64}]}}
//	    runs merkle.DefaultProofRuntime().VerifyValue; exit 0 if it verifies,
//	    exit 1 (reason on stderr) if it does not.
//	{"mode": "hash", "cases": [[BASE64, ...], ...]}
//	    prints a JSON array with hex merkle.HashFromByteSlices of each case.
//	{"mode": "proofs", "items": [BASE64, ...]}
//	    prints {"root": HEX, "ops": [BASE64, ...]} where ops[i] is the
//	    gogoproto encoding of ValueOp{key: items[i], proof: proofs[i]} built
//	    from merkle.ProofsFromByteSlices(items).
//	{"mode": "keypath", "keys": [BASE64, ...]}
//	    prints {"hex": STR, "url": STR}: merkle.KeyPath strings of the keys.
//
// Exit status 2 means the request itself was malformed.
package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/cometbft/cometbft/crypto/merkle"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
)

type request struct {
	Mode     string          `json:"mode"`
	Root     string          `json:"root"`
	Keypath  string          `json:"keypath"`
	Value    []byte          `json:"value"`
	ProofOps json.RawMessage `json:"proof_ops"`
	Cases    [][][]byte      `json:"cases"`
	Items    [][]byte        `json:"items"`
	Keys     [][]byte        `json:"keys"`
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}

func emit(v any) {
	out, err := json.Marshal(v)
	if err != nil {
		fail(2, "encoding output: %v", err)
	}
	fmt.Println(string(out))
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "reading stdin: %v", err)
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		fail(2, "parsing request: %v", err)
	}
	switch req.Mode {
	case "verify":
		verify(req)
	case "hash":
		roots := make([]string, len(req.Cases))
		for i, items := range req.Cases {
			roots[i] = hex.EncodeToString(merkle.HashFromByteSlices(items))
		}
		emit(roots)
	case "proofs":
		root, proofs := merkle.ProofsFromByteSlices(req.Items)
		ops := make([]string, len(proofs))
		for i, p := range proofs {
			op := merkle.NewValueOp(req.Items[i], p).ProofOp()
			ops[i] = base64.StdEncoding.EncodeToString(op.Data)
		}
		emit(map[string]any{"root": hex.EncodeToString(root), "ops": ops})
	case "keypath":
		var hexPath, urlPath merkle.KeyPath
		for _, k := range req.Keys {
			hexPath = hexPath.AppendKey(k, merkle.KeyEncodingHex)
			urlPath = urlPath.AppendKey(k, merkle.KeyEncodingURL)
		}
		emit(map[string]string{"hex": hexPath.String(), "url": urlPath.String()})
	default:
		fail(2, "unknown mode %q", req.Mode)
	}
}

func verify(req request) {
	root, err := hex.DecodeString(req.Root)
	if err != nil {
		fail(2, "root is not hex: %v", err)
	}
	// Parse proof_ops the way CometBFT's RPC layer encodes them (libs/json).
	var ops cmtcrypto.ProofOps
	if err := cmtjson.Unmarshal(req.ProofOps, &ops); err != nil {
		fail(2, "parsing proof_ops: %v", err)
	}
	prt := merkle.DefaultProofRuntime() // knows exactly merkle.ProofOpValue ("simple:v")
	if err := prt.VerifyValue(&ops, root, req.Keypath, req.Value); err != nil {
		fail(1, "refused: %v", err)
	}
	fmt.Println("ok")
}
