"""Orchid's gRPC server: servicers for the orchid.v1 services, behind Envoy."""
