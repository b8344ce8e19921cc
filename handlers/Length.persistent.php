#!/usr/bin/env php
<?php
// Length: the number of characters of a text, as a persistent handler (PHP,
// no extensions beyond json and pcre).
//
// One process serves many jobs: each job is one JSON line on stdin, and each
// answer one "done" line on the descriptor in RESQUE_RESULT_FD (3).
//
// Job:     {"class":"Length","args":["héllo"]}   result {"length":5}
// By hand: echo '{"args":["héllo"]}' | ./handlers/Length.persistent.php
ini_set('display_errors', 'stderr'); // PHP warnings go to stderr, i.e. resqued's log

$fd = getenv('RESQUE_RESULT_FD');
$out = $fd !== false ? fopen("php://fd/$fd", 'w') : STDOUT;
$report = function (array $line) use ($out) {
    fwrite($out, json_encode($line, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) . "\n");
    fflush($out);
};

function length(array $args): array
{
    if (count($args) !== 1 || !is_string($args[0])) {
        throw new InvalidArgumentException('args must be ["some text"], got ' . substr(json_encode($args), 0, 100));
    }
    return ['length' => preg_match_all('/./su', $args[0])]; // characters, not bytes
}

while (($line = fgets(STDIN)) !== false) { // one job per line; EOF means exit
    try {
        $job = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        $report(['done' => 'ok', 'result' => length($job['args'] ?? [])]);
    } catch (Throwable $e) { // the job fails, the process carries on
        fwrite(STDERR, "Length: {$e->getMessage()}\n");
        $report(['done' => 'failed', 'exception' => get_class($e), 'error' => $e->getMessage(),
                 'backtrace' => explode("\n", $e->getTraceAsString())]);
    }
}
