# Flatcar puts /opt/bin on PATH: /usr is read-only there, binaries fetched at
# provisioning time go to /opt/bin.
case ":$PATH:" in *:/opt/bin:*) ;; *) PATH="/opt/bin:$PATH" ;; esac
export PATH
