#!/usr/bin/env php
<?php
// Invoice: total an invoice (PHP, no extensions beyond json), written the
// php-resque way: the job class below is unchanged from a php-resque worker.
//
// Job:     {"class":"Invoice","args":[{"items":[{"price":2.5,"qty":2}],"tax":0.2}]}
// Result:  {"subtotal":5.0,"tax":1.0,"total":6.0}
// By hand: echo '[{"items":[{"price":2.5,"qty":2}],"tax":0.2}]' | ./handlers/Invoice.php
ini_set('display_errors', 'stderr'); // PHP warnings go to stderr, i.e. resqued's log

class Invoice
{
    public $args; // as in php-resque: the job's one associative array, args[0]

    public function perform()
    {
        $items = $this->args['items'] ?? null;
        $tax = $this->args['tax'] ?? 0;
        if (!is_array($items) || !$items || !is_numeric($tax) || $tax < 0) {
            throw new InvalidArgumentException('args must be [{"items":[{"price":2.5,"qty":2}],"tax":0.2}]');
        }
        $subtotal = 0;
        foreach ($items as $i => $item) {
            if (!is_numeric($item['price'] ?? null) || !is_int($item['qty'] ?? null) || $item['qty'] < 0) {
                throw new InvalidArgumentException("item $i needs a numeric price and a whole qty >= 0");
            }
            $subtotal += $item['price'] * $item['qty'];
        }
        $tax = round($subtotal * $tax, 2);
        return ['subtotal' => round($subtotal, 2), 'tax' => $tax, 'total' => round($subtotal + $tax, 2)];
    }
}

// The result and the failure are one JSON line each on the descriptor resqued
// names in RESQUE_RESULT_FD (3); on stdout when run by hand.
$fd = getenv('RESQUE_RESULT_FD');
$out = $fd !== false ? fopen("php://fd/$fd", 'w') : STDOUT;
$report = fn (array $line) =>
    fwrite($out, json_encode($line, JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION) . "\n");

try {
    $args = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
    $job = new Invoice();
    $job->args = is_array($args) ? ($args[0] ?? null) : null; // what php-resque passes
    if (method_exists($job, 'setUp')) $job->setUp();         // php-resque's hooks, if any
    $report(['result' => $job->perform()]);
    if (method_exists($job, 'tearDown')) $job->tearDown();
} catch (Throwable $e) {
    fwrite(STDERR, "Invoice: {$e->getMessage()}\n");
    // The fields php-resque's Redis failure backend records.
    $report(['exception' => get_class($e), 'error' => $e->getMessage(),
             'backtrace' => explode("\n", $e->getTraceAsString())]);
    exit(1);
}
