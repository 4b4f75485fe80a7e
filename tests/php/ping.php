<?php
// Health probe target.
echo "pong\n";
