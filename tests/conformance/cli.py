"""Running the real `openstack` CLI as a user would."""

import json
import os
import subprocess
import sys
from pathlib import Path

OPENSTACK = Path(sys.executable).parent / "openstack"


class CLI:
    """Runs `openstack` with a clean environment: our clouds.yaml only, no
    OS_* variables inherited, and a working directory with no stray
    clouds.yaml (the client also reads ./clouds.yaml)."""

    def __init__(self, cloud, folder):
        self.cloud = cloud
        self.folder = folder
        self.clouds_yaml = cloud.clouds_yaml(folder / "clouds.yaml")
        self.no_clouds = folder / "no-clouds.yaml"
        self.no_clouds.write_text("clouds: {}\n")
        self.auth_url = f"{cloud.url}/identity"

    def run(self, *args, cloud="dc", expect_ok=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml if cloud else self.no_clouds)
        argv = [str(OPENSTACK), *(["--os-cloud", cloud] if cloud else []), *args]
        done = subprocess.run(argv, cwd=self.folder, env=env, capture_output=True, text=True, timeout=120)
        if expect_ok:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args, **kwargs):
        done = self.run(*args, "-f", "json", **kwargs)
        # `--wait` prints "Progress: N" before the document.
        starts = [i for i in (done.stdout.find("{"), done.stdout.find("[")) if i >= 0]
        return json.loads(done.stdout[min(starts):] if starts else done.stdout)

    def with_token(self, token, *args, expect_ok=True):
        return self.run("--os-auth-type", "token", "--os-token", token, "--os-auth-url", self.auth_url,
                        "--os-project-name", "demo", "--os-project-domain-name", "Default", *args,
                        cloud=None, expect_ok=expect_ok)

    def with_application_credential(self, credential_id, secret, *args, expect_ok=True):
        return self.run("--os-auth-type", "v3applicationcredential", "--os-auth-url", self.auth_url,
                        "--os-application-credential-id", credential_id,
                        "--os-application-credential-secret", secret, *args, cloud=None, expect_ok=expect_ok)
