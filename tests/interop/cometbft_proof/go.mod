module reco2/tests/interop/cometbft_proof

go 1.22.11

require github.com/cometbft/cometbft v0.38.26

require (
	github.com/cosmos/gogoproto v1.7.0 // indirect
	github.com/google/go-cmp v0.6.0 // indirect
	github.com/petermattis/goid v0.0.0-20250813065127-a731cc31b4fe // indirect
	github.com/sasha-s/go-deadlock v0.3.9 // indirect
	google.golang.org/protobuf v1.36.5 // indirect
)
