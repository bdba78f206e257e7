"""Vehicle registry: GSP probe rules, registration, broker credentials and ACLs.

`models` and `rules` are the pure core; `credentials` hashes passwords and renders the broker's
files; `repository` is the SQL adapter; `service` ties them together; `cli` is `coldchain vehicles`.
"""

from controller.vehicles.credentials import (
    generate_password,
    hash_password,
    render_acl,
    upsert_password,
    verify_password,
    write_acl,
)
from controller.vehicles.models import (
    CompartmentSpec,
    ProbeSpec,
    VehicleRecord,
    VehicleSpec,
    parse_vehicle,
    parse_vehicle_toml,
)
from controller.vehicles.rules import (
    TEMPERATURE_CLASSES,
    Finding,
    ProbeRules,
    TemperatureClass,
    check_vehicle,
    required_probes,
)
from controller.vehicles.service import (
    GatewayPaths,
    RegistrationResult,
    get_vehicle,
    list_vehicles,
    public_keys,
    register_vehicle,
)

__all__ = [
    "TEMPERATURE_CLASSES",
    "CompartmentSpec",
    "Finding",
    "GatewayPaths",
    "ProbeRules",
    "ProbeSpec",
    "RegistrationResult",
    "TemperatureClass",
    "VehicleRecord",
    "VehicleSpec",
    "check_vehicle",
    "generate_password",
    "get_vehicle",
    "hash_password",
    "list_vehicles",
    "parse_vehicle",
    "parse_vehicle_toml",
    "public_keys",
    "register_vehicle",
    "render_acl",
    "required_probes",
    "upsert_password",
    "verify_password",
    "write_acl",
]
