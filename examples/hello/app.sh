#!/bin/sh
echo "${GREETING} from a Kiln-built image ($(cat /app/built-at))"
